"""Calls: who may take one.

Browser-phone identities, the free operators of an inbox, business hours, and the user a PBX names.
"""

import re
from datetime import UTC, datetime, time, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, Table, bindparam, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.calls.models import Call, CallState, WrapupState
from helpdesk.calls.settings_models import BusinessHours
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import presence
from helpdesk.storage import prepared
from helpdesk.storage.types import UTCDateTime

VOICEMAIL = "voicemail"
CALL: Table = Call.__table__  # type: ignore[attr-defined]
WRAPUP: Table = WrapupState.__table__  # type: ignore[attr-defined]


def client_identity(user_id: int) -> str:
    """The browser phone's client name for a user."""
    return f"op-{user_id}"


def user_id_of_identity(identity: str) -> int | None:
    """The user a client name (``op-5`` or ``client:op-5``) belongs to."""
    match = re.fullmatch(r"(?:client:)?op-(\d{1,12})", identity.strip())
    return int(match.group(1)) if match else None


def _free_operators_query() -> Select[Any]:
    # Online active members of the inbox, each with whether they are on a call (or still in
    # its after-call work) and when they last answered one: single index probes per operator,
    # however long their history.
    on_call = (select(CALL.c.id).where(CALL.c.state == CallState.answered.value,
                                       CALL.c.operator_id == inbox_service.USER.c.id)
               .limit(1).correlate(inbox_service.USER).scalar_subquery())
    in_wrapup = (select(WRAPUP.c.call_ref).where(
        WRAPUP.c.operator_id == inbox_service.USER.c.id, WRAPUP.c.submitted_at.is_(None),
        WRAPUP.c.started_at > bindparam("acw_since", type_=UTCDateTime))
        .limit(1).correlate(inbox_service.USER).scalar_subquery())
    last = (select(func.max(CALL.c.answered_at)).where(CALL.c.operator_id == inbox_service.USER.c.id)
            .correlate(inbox_service.USER).scalar_subquery())
    online = presence.online_query(inbox_service.active_members(bindparam("inbox_id", type_=Integer)))
    return select(inbox_service.USER.c.id, func.coalesce(on_call, in_wrapup), last).where(
        inbox_service.USER.c.id.in_(online))


class _Operator(NamedTuple):
    user_id: int | None
    busy_with: int | None  # the call or after-call work holding them, if any
    last_answered_at: datetime | str | None


_FREE_OPERATORS = prepared.Query(_free_operators_query(), _Operator)


async def choose_operators(session: AsyncSession, inbox_id: int, *, limit: int,
                           acw_limit: timedelta = timedelta(0)) -> list[int]:
    """Online members of the inbox neither on a call nor in after-call work younger than
    ``acw_limit``, longest since their last answered call first."""
    rows = await prepared.rows(session, _FREE_OPERATORS, {"inbox_id": inbox_id,
                                                          "acw_since": utcnow() - acw_limit})
    never = datetime.min.replace(tzinfo=UTC)
    free = [(_aware(row.last_answered_at) or never, row.user_id) for row in rows
            if row.busy_with is None and row.user_id is not None]
    return [uid for _, uid in sorted(free)][:limit]


def _aware(value: datetime | str | None) -> datetime | None:
    # An aggregate in a scalar subquery comes back raw: naive, or text on SQLite.
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def is_open(hours: BusinessHours | None, *, tz: str, now: datetime | None = None) -> bool:
    """Whether the phone line is within business hours (no hours set: always open)."""
    if hours is None:
        return True
    local = (now or utcnow()).astimezone(ZoneInfo(tz))
    opens = time.fromisoformat(hours.open)
    closes = time(23, 59, 59, 999999) if hours.close == "24:00" else time.fromisoformat(hours.close)
    return local.weekday() in hours.days and opens <= local.time() < closes


def user_matches(label: str) -> Any:
    """A filter matching a user by id, email or name (how PBXs name the answering agent)."""
    label = normalize.nfkc(label)
    conditions = [func.lower(col(User.email)) == label.lower(), col(User.name) == label]
    if label.isdigit() and len(label) < 12:
        conditions.append(col(User.id) == int(label))
    return or_(*conditions)


async def user_id_named(session: AsyncSession, label: str | None) -> int | None:
    """The active user a PBX names (first of a comma-separated list), if any."""
    if not label or not label.strip():
        return None
    first = label.split(",")[0].strip()
    if not first or first.lower() == VOICEMAIL:
        return None
    return await session.scalar(select(col(User.id)).where(
        user_matches(first), col(User.is_active).is_(True)).limit(1))
