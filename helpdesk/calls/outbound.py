"""Calls: click-to-call. The provisional outbound row, then the provider's answer to placing it."""

import uuid
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.calls import settings as cti_settings
from helpdesk.calls.models import Call, CallDirection, CallState
from helpdesk.calls.service import CallOptions
from helpdesk.customers import service as customers
from helpdesk.db import utcnow
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.inboxes import service as inbox_service
from helpdesk.profiles import service as profiles


class DialFailed(HelpdeskError):
    status_code = 502


# Places a call from the operator's browser phone to ``to``; returns the provider's call id.
Dialer = Callable[..., Awaitable[str]]


async def start_outbound(
    session: AsyncSession, *, user: User, to: str, customer_id: int | None, options: CallOptions
) -> Call:
    """A provisional outbound call row, before the provider has been asked to place it."""
    e164 = normalize.phone(to, options.region)
    if e164 is None:
        raise BadInput("to: not a phone number")
    caller_id = cti_settings.outbound_caller_id(await cti_settings.cti_config(session), e164.lstrip("+"))
    if not caller_id:
        raise BadInput("no caller id for this destination: set a route or a default caller id")
    if customer_id is None:
        owner = await profiles.customer_rows_by_phone(session, e164)
        customer_id = owner.id if owner is not None else None
    inbox = await inbox_service.inbox_for_number(session, caller_id, region=options.region)
    assert inbox.id is not None
    call = Call(provider="twilio", call_id=f"pending-{uuid.uuid4().hex}", direction=CallDirection.outbound,
                from_number=caller_id, to_number=e164, caller_e164=e164, inbox_id=inbox.id,
                operator_id=user.id, customer_id=customer_id, done=True, queue=caller_id)
    session.add(call)
    await session.flush()
    return call


def placed(call: Call, provider_call_id: str) -> None:
    """The provider accepted the call: adopt its id so status callbacks find the row."""
    call.call_id = provider_call_id[:250]


def failed(call: Call, reason: str) -> None:
    """The provider refused the call."""
    call.state, call.ended_at, call.cause = CallState.ended, utcnow(), reason[:40]


async def customer_exists(session: AsyncSession, customer_id: int) -> bool:
    """Whether a customer id names a customer."""
    return bool(await customers.summaries(session, [customer_id]))
