"""A customer's profile, as the operator sees it."""

from fastapi import APIRouter, Request

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import CurrentUser, SettingsDep
from helpdesk.db import SessionDep
from helpdesk.errors import NotFound
from helpdesk.profiles import service
from helpdesk.profiles.models import Profile

router = APIRouter(prefix="/api/customers", tags=["customers"])


@router.get("/{customer_id}", response_model=Profile)
async def get_customer(
    customer_id: int, session: SessionDep, user: CurrentUser, request: Request,
    settings: SettingsDep,
) -> Profile:
    """A customer's full profile; the view is audited."""
    profile = await service.profile(session, customer_id, viewer=user,
                                    dormant_after_days=settings.dormant_after_days)
    if profile is None:
        raise NotFound("customer not found")
    audit.record(session, action="customer.view", actor_id=user.id, actor_email=user.email,
                 target_type="customer", target_id=customer_id,
                 ip=request.client.host if request.client else None)
    await session.commit()
    return profile
