"""Finding customers."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import CurrentUser, Supervisor, client_ip
from helpdesk.config import SettingsDep
from helpdesk.customers import merging as customer_merging
from helpdesk.customers import service
from helpdesk.customers.models import CustomerPage, MergeRequest, MergeResult
from helpdesk.db import ReadSessionDep, SessionDep

router = APIRouter(prefix="/api/customers", tags=["customers"])


@router.get("", response_model=CustomerPage)
async def find_customers(
    session: ReadSessionDep,
    settings: SettingsDep,
    _: CurrentUser,
    phone: Annotated[str | None, Query(max_length=40)] = None,
    email: Annotated[str | None, Query(max_length=254)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CustomerPage:
    """Customers by phone in any format, email, or free text."""
    items = await service.find(session, phone=phone, email=email, q=q,
                               region=settings.default_region, limit=limit)
    return CustomerPage(items=items)


@router.post("/{customer_id}/merge", response_model=MergeResult)
async def merge_customers(
    customer_id: int, body: MergeRequest, session: SessionDep, settings: SettingsDep,
    user: Supervisor, request: Request,
) -> MergeResult:
    """Fold another customer into this one: identities, orders, tickets and calls all move."""
    moved = await customer_merging.merge(session, customer_id, body.other_id, region=settings.default_region,
                                dormant_after_days=settings.dormant_after_days)
    audit.record(session, action="customer.merge", actor_id=user.id, actor_email=user.email,
                 target_type="customer", target_id=customer_id,
                 ip=client_ip(request),
                 merged_id=body.other_id, moved=moved)
    await session.commit()
    return MergeResult(id=customer_id, merged_id=body.other_id, moved=moved)
