"""A customer's profile, as the operator sees it."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import CurrentUser, client_ip
from helpdesk.auth.models import User
from helpdesk.calls.recent import recent_calls
from helpdesk.config import SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import NotFound
from helpdesk.profiles import service
from helpdesk.profiles.models import Profile

router = APIRouter(prefix="/api/customers", tags=["customers"])


@router.get("/by-phone", response_model=Profile)
async def get_customer_by_phone(
    phone: Annotated[str, Query(min_length=1, max_length=40)], session: ReadSessionDep,
    user: CurrentUser, request: Request, settings: SettingsDep,
) -> Profile:
    """The full profile of whoever owns a phone number (any spelling); the view is audited."""
    profile = await service.profile_by_phone(session, phone, viewer=user, recent_calls=recent_calls,
                                             region=settings.default_region,
                                             dormant_after_days=settings.dormant_after_days)
    if profile is None:
        raise NotFound("no customer has this phone number")
    # Read without the write lock (SQLite); only the audit row needs a write transaction.
    async with request.app.state.sessionmaker() as writer:
        _audit_view(writer, request, user, profile.id)
        await writer.commit()
    return profile


@router.get("/{customer_id}", response_model=Profile)
async def get_customer(
    customer_id: int, session: SessionDep, user: CurrentUser, request: Request,
    settings: SettingsDep,
) -> Profile:
    """A customer's full profile; the view is audited."""
    profile = await service.profile(session, customer_id, viewer=user, recent_calls=recent_calls,
                                    dormant_after_days=settings.dormant_after_days)
    if profile is None:
        raise NotFound("customer not found")
    _audit_view(session, request, user, customer_id)
    await session.commit()
    return profile


def _audit_view(session: AsyncSession, request: Request, user: User, customer_id: int) -> None:
    audit.record(session, action="customer.view", actor_id=user.id, actor_email=user.email,
                 target_type="customer", target_id=customer_id,
                 ip=client_ip(request))
