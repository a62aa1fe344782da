"""Finding customers."""

from typing import Annotated

from fastapi import APIRouter, Query

from helpdesk.auth.dependencies import CurrentUser, SettingsDep
from helpdesk.customers import service
from helpdesk.customers.models import CustomerPage
from helpdesk.db import ReadSessionDep

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
