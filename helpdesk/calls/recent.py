"""A customer's latest calls, for the profile: the screen pop, the customer and ticket pages, the API.

The profile package knows no calls; whoever builds a profile hands it ``recent_calls``. One
prepared statement per scope (everyone, some inboxes, a viewer's inboxes), read as
``RecentCallRow`` and shaped as the contract's Call.
"""

from datetime import datetime
from typing import Any, NamedTuple

from pydantic import BaseModel
from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.calls.models import Call, CallPublic
from helpdesk.customers.models import table_of
from helpdesk.profiles import service as profiles
from helpdesk.storage import prepared

RECENT_CALLS = 10
CALL = table_of(Call)


class RecentCallRow(NamedTuple):
    """The Call columns CallPublic validates from, in CallPublic's order (checked below)."""

    id: int
    call_id: str
    provider: str
    direction: str
    from_number: str
    to_number: str
    state: str
    cause: str | None
    done: bool
    voicemail: bool
    customer_id: int | None
    operator_id: int | None
    ticket_id: int | None
    inbox_id: int
    queue: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    recording_url: str | None


def columns_read_by(model: type[BaseModel]) -> tuple[str, ...]:
    """The names ``model`` validates its fields from (a field's validation alias, else its name)."""
    return tuple(field.validation_alias if isinstance(field.validation_alias, str) else name
                 for name, field in model.model_fields.items())


# A field added to CallPublic (or renamed) must be read here too, or the pop and the profile would
# show calls without it: refuse to start instead.
if columns_read_by(CallPublic) != RecentCallRow._fields:
    raise RuntimeError("RecentCallRow no longer follows CallPublic's fields")

_RECENT_CALLS = profiles.scoped(
    select(*[CALL.c[name] for name in RecentCallRow._fields])
    .where(CALL.c.customer_id == bindparam("customer_id"))
    .order_by(CALL.c.started_at.desc(), CALL.c.id.desc()).limit(RECENT_CALLS),
    CALL.c.inbox_id, RecentCallRow)


async def recent_calls(
    session: AsyncSession, customer_id: int, scope: profiles.ProfileScope
) -> list[dict[str, Any]]:
    """The customer's latest calls that ``scope`` may see, newest first, in the contract's shape."""
    variant, params = scope.scope()
    rows = await prepared.rows(session, _RECENT_CALLS[variant], {"customer_id": customer_id, **params})
    return [CallPublic.model_validate(row._asdict()).model_dump(mode="json", by_alias=True)
            for row in rows]
