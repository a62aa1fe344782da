"""A call's place in the ticket thread: the open ticket it joins, and the entries it leaves there.

The ring looks up the caller's open ticket in the called inbox (one indexed statement), so the
card and the answering operator's page open that ticket. Answering adds the call to it (or opens
one), hang-up adds the call's length, a recording adds itself, and missed calls from one caller
on one day share a ticket.
"""

import contextlib
from datetime import timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import Table, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.calls.models import Call, CallDirection
from helpdesk.errors import HelpdeskError
from helpdesk.inboxes.models import Inbox
from helpdesk.storage import prepared
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, InboundMessage, Sender, Ticket

TICKET: Table = Ticket.__table__  # type: ignore[attr-defined]
_OPEN = [status.value for status in ticket_queries.OPEN_STATUSES]
# The caller's most recently active open ticket in the inbox: ix_ticket_customer_id narrows it
# to the customer's handful of tickets.
class _TicketId(NamedTuple):
    id: int


_OPEN_TICKET = prepared.Query(
    select(TICKET.c.id)
    .where(TICKET.c.customer_id == bindparam("customer_id"),
           TICKET.c.inbox_id == bindparam("inbox_id"), TICKET.c.status.in_(_OPEN))
    .order_by(TICKET.c.updated_at.desc(), TICKET.c.id.desc()).limit(1), _TicketId)
WITHHELD = "非通知"


async def open_ticket_id(session: AsyncSession, *, customer_id: int, inbox_id: int) -> int | None:
    """The caller's open ticket in the inbox a call rings in, if any (the ring's one lookup)."""
    found = await prepared.first(session, _OPEN_TICKET, {"customer_id": customer_id,
                                                         "inbox_id": inbox_id})
    return int(found.id) if found is not None else None


def caller_card(call: Call, profile: dict[str, Any] | None, region: str) -> dict[str, Any]:
    """What the pop-up headline shows: a known customer, a new one, or a withheld number."""
    raw = call.from_number if call.direction == CallDirection.inbound else call.to_number
    withheld = call.caller_e164 is None and normalize.is_withheld(raw)
    display = normalize.phone_display(call.caller_e164, region) if call.caller_e164 else (
        WITHHELD if withheld else raw)
    return {"number": call.caller_e164, "display": display, "withheld": withheld,
            "known": profile is not None, "customer_id": call.customer_id,
            "name": profile["name"] if profile else None}


def duration_ja(seconds: int) -> str:
    """A length as the thread writes it: 1分23秒, 45秒, 1時間2分3秒."""
    hours, rest = divmod(max(0, seconds), 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}時間{minutes}分{secs}秒"
    return f"{minutes}分{secs}秒" if minutes else f"{secs}秒"


async def join_ticket(session: AsyncSession, call: Call, *, region: str,
                      reopen_window: timedelta) -> None:
    """An answered inbound call joins the ticket found at ring (or the caller's open one now),
    or opens one; the answering operator takes it unless someone else holds it."""
    token = None
    if call.ticket_id is not None:
        token = await session.scalar(select(col(Ticket.token)).where(
            col(Ticket.id) == call.ticket_id, col(Ticket.status).in_(_OPEN)))
    if token is None and call.customer_id is not None:
        token = await ticket_queries.open_ticket_token(session, customer_id=call.customer_id,
                                                inbox_id=call.inbox_id)
    display = caller_card(call, None, region)["display"]
    await _ticket_from(session, call, suffix="answered", subject=f"電話 {display}",
                       body=f"着信 {display}", token=token, key=None, region=region,
                       reopen_window=reopen_window)
    if call.operator_id is not None and call.ticket_id is not None:
        operator = await session.get(User, call.operator_id)
        if operator is not None:
            with contextlib.suppress(HelpdeskError):  # someone else holds it: they keep it
                await tickets.claim(session, call.ticket_id, actor=operator)


async def missed_ticket(session: AsyncSession, call: Call, *, region: str, timezone: str,
                        reopen_window: timedelta) -> None:
    """A missed call or voicemail: one ticket per caller, inbox and day, each call an entry."""
    display = caller_card(call, None, region)["display"]
    kind = "留守番電話" if call.voicemail else "不在着信"
    await _ticket_from(session, call, suffix="missed", subject="不在着信",
                       body=f"{kind} {display}: 折り返しが必要です", token=None,
                       key=_daily_key(call, timezone), region=region, reopen_window=reopen_window)


async def callback_ticket(session: AsyncSession, call: Call, *, region: str, timezone: str,
                          reopen_window: timedelta) -> int | None:
    """A queued caller's callback request, in the caller's ticket of the day."""
    display = caller_card(call, None, region)["display"]
    await _ticket_from(session, call, suffix="callback", subject="折り返し依頼",
                       body=f"折り返し希望 {display}", token=None, key=_daily_key(call, timezone),
                       region=region, reopen_window=reopen_window)
    return call.ticket_id


def _daily_key(call: Call, timezone: str) -> str | None:
    # Missed calls and callback requests from one caller to one inbox on one day share a ticket.
    day = (call.ended_at or call.started_at).astimezone(ZoneInfo(timezone)).date().isoformat()
    return f"missed:{call.inbox_id}:{call.caller_e164}:{day}" if call.caller_e164 else None


async def _ticket_from(
    session: AsyncSession, call: Call, *, suffix: str, subject: str, body: str,
    token: str | None, key: str | None, region: str, reopen_window: timedelta,
) -> None:
    inbox = await session.get(Inbox, call.inbox_id)
    withheld = call.caller_e164 is None
    result = await ticket_ingest.ingest(session, InboundMessage(
        channel=Channel.phone, external_id=f"{call.provider}:{call.call_id}:{suffix}"[:255],
        sender=Sender(phone=call.caller_e164, withheld=withheld),
        subject=subject, body_text=body, inbox=inbox.name if inbox else "default",
        ticket_token=token, conversation_key=None if token else (key or f"call:{call.id}"),
        received_at=call.ended_at if suffix == "missed" else None,
    ), options=ticket_ingest.IngestOptions(region=region, reopen_window=reopen_window))
    ticket = await session.get(Ticket, result.ticket_id)
    call.ticket_id = result.ticket_id
    if call.customer_id is None and ticket is not None:
        call.customer_id = ticket.customer_id
    if call.menu_tag and not result.duplicate:
        await tickets.add_tag(session, result.ticket_id, call.menu_tag)


def talk_seconds(call: Call) -> int | None:
    """Seconds talked on an answered call that has ended."""
    if call.answered_at is None or call.ended_at is None:
        return None
    return max(0, int((call.ended_at - call.answered_at).total_seconds()))


async def ended_entry(session: AsyncSession, call: Call) -> None:
    """The answered call's end in its ticket's thread, with how long it lasted."""
    seconds = talk_seconds(call)
    if call.ticket_id is None or seconds is None:
        return
    verb = "発信" if call.direction == CallDirection.outbound else "通話"
    await ticket_ingest.system_note(session, call.ticket_id, channel=Channel.phone,
                              external_id=f"{call.provider}:{call.call_id}:ended"[:255],
                              body=f"{verb}終了 通話時間 {duration_ja(seconds)}",
                              at=call.ended_at)


async def recording_entry(session: AsyncSession, call: Call, *, key: str) -> None:
    """A recording or voicemail in its call's ticket thread, with its length."""
    if call.ticket_id is None or call.recording_url is None:
        return
    kind = "留守番電話" if call.voicemail else "通話録音"
    length = f" {duration_ja(call.recording_seconds)}" if call.recording_seconds is not None else ""
    await ticket_ingest.system_note(session, call.ticket_id, channel=Channel.phone,
                              external_id=f"{call.provider}:{call.call_id}:{key}"[:255],
                              body=f"{kind}{length}\n{call.recording_url}", at=None)

