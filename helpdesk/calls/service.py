"""Calls from any provider: the call's life from ringing through the queue to answer and hang-up.

Provider adapters parse their protocol and call ``ring``, ``answer``, ``hangup`` and
``store_recording``. Every transition carries a key; a key already applied to the call is a retry
and changes nothing. A call's state only moves forward, whatever order events arrive in.

Around it: ``threads`` (the call's ticket and its entries), ``wrapup`` (after-call work),
``transfer``, ``ivr`` (keypad menu and callback offer), ``settings`` (admin-edited CTI and voice
settings), ``announce`` (the events), ``log`` (the caller log), ``callbacks`` (calling back),
``operators`` (who may take a call), ``outbound`` (click-to-call).
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.calls import announce, ivr, threads, transfer, wrapup
from helpdesk.calls import settings as cti_settings
from helpdesk.calls.models import Call, CallDirection, CallEvent, CallState, Routed
from helpdesk.calls.operators import VOICEMAIL, choose_operators, is_open
from helpdesk.calls.settings_models import CtiConfig, VoiceConfig
from helpdesk.config import DEFAULT_REGION, Settings
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.inboxes.models import Inbox
from helpdesk.profiles import service as profiles
from helpdesk.realtime import events
from helpdesk.storage import prepared
from helpdesk.storage.construct import construct
from helpdesk.storage.locks import serialize_on

CALL: Table = Call.__table__  # type: ignore[attr-defined]
CALL_EVENT: Table = CallEvent.__table__  # type: ignore[attr-defined]
# Hang-up causes that mean the call went somewhere else rather than being missed.
NOT_MISSED_CAUSES = {"forwarded"}


@dataclass(frozen=True)
class CallOptions:
    """The settings call handling reads."""

    region: str = DEFAULT_REGION
    timezone: str = "Asia/Tokyo"
    dormant_after_days: int = 180
    ring_group: int = 10
    reopen_window: timedelta = timedelta(days=14)
    acw_limit: timedelta = timedelta(seconds=120)


def options_from(settings: Settings) -> CallOptions:
    """CallOptions from the app's settings."""
    return CallOptions(region=settings.default_region, timezone=settings.timezone,
                       dormant_after_days=settings.dormant_after_days,
                       reopen_window=timedelta(days=settings.reopen_window_days),
                       acw_limit=timedelta(seconds=settings.acw_limit_seconds))


@dataclass(frozen=True)
class Ring:
    """A new call as an adapter parsed it."""

    provider: str
    call_id: str
    direction: CallDirection
    from_: str
    to: str
    queue: str | None = None
    user_label: str | None = None
    operator_id: int | None = None
    route: bool = False  # choose dial / queue / voicemail (providers that ask us what to do)
    ticket_id: int | None = None  # an outbound call started from this ticket belongs to it


@dataclass
class Ringing:
    call: Call
    created: bool
    inbox_name: str = "default"
    config: CtiConfig = field(default_factory=CtiConfig)
    voice: VoiceConfig = field(default_factory=VoiceConfig)  # what the inbox's callers hear


async def ring(session: AsyncSession, new: Ring, *, options: CallOptions) -> Ringing:
    """Record a new call (a retried one returns the original) and pop the screen for inbound."""
    await serialize_on(session, f"call:{new.provider}:{new.call_id}")
    settings = await cti_settings.cached(session, options.region)
    existing_id = await prepared.first(session, _CALL_BY_PROVIDER_ID, {"provider": new.provider,
                                                                       "call_id": new.call_id})
    if existing_id is not None:
        existing = await session.get(Call, existing_id.id)
        assert existing is not None
        known = await session.get(Inbox, existing.inbox_id)
        return Ringing(existing, False, known.name if known else "default", settings.config,
                       settings.voice.get(existing.inbox_id) or VoiceConfig())
    inbound = new.direction == CallDirection.inbound
    caller = new.from_ if inbound else new.to
    inbox = await inbox_service.inbox_ref_for_number(session, new.to if inbound else new.from_,
                                               region=options.region)
    e164 = normalize.phone(caller, options.region)
    # The caller's customer row (with identities) is read once: for the call and for the pop.
    customer = await profiles.customer_rows_by_phone(session, e164) if e164 else None
    call = construct(
        Call, provider=new.provider, call_id=new.call_id, direction=new.direction,
        from_number=new.from_[:64], to_number=new.to[:64], caller_e164=e164,
        inbox_id=inbox.id, operator_id=new.operator_id, done=not inbound,
        customer_id=customer.id if customer is not None else None,
        ticket_id=new.ticket_id or (
            await threads.open_ticket_id(session, customer_id=customer.id, inbox_id=inbox.id)
            if customer is not None else None),
        queue=(new.queue or (new.to if inbound else new.from_))[:120] or None,
        user_label=new.user_label[:500] if new.user_label else None,
    )
    if inbound:
        await _route(session, call, new, settings, options)
    # Written by plain statements: the ORM's unit of work costs more than the rest of the ring.
    inserted = await prepared.first(session, _INSERT_CALL, {name: getattr(call, name)
                                                            for name in _INSERT_CALL_COLUMNS})
    assert inserted is not None  # INSERT … RETURNING gives its row
    call.id = inserted.id
    await prepared.execute(session, _INSERT_CALL_EVENT, {"call_ref": call.id, "key": "ring", "at": utcnow()})
    if inbound and call.routed not in (Routed.rejected, Routed.menu):
        await _announce_ring(session, call, customer, options)
    return Ringing(call, True, inbox.name, settings.config,
                   settings.voice.get(call.inbox_id) or VoiceConfig())


_INSERT_CALL_COLUMNS = [column.name for column in CALL.c if column.name != "id"]



class _CallId(NamedTuple):
    id: int


_INSERT_CALL = prepared.Query(insert(CALL).values({name: bindparam(name) for name in _INSERT_CALL_COLUMNS})
                              .returning(CALL.c.id), _CallId)
_INSERT_CALL_EVENT = insert(CALL_EVENT).values(call_ref=bindparam("call_ref"), key=bindparam("key"),
                                               at=bindparam("at"))
_CALL_BY_PROVIDER_ID = prepared.Query(select(CALL.c.id).where(CALL.c.provider == bindparam("provider"),
                                                              CALL.c.call_id == bindparam("call_id")),
                                      _CallId)


async def _route(
    session: AsyncSession, call: Call, new: Ring, settings: cti_settings.Cached, options: CallOptions
) -> None:
    if settings.blocked.match(new.from_, region=options.region):
        call.routed, call.state, call.cause = Routed.rejected, CallState.ended, "blocked"
        call.ended_at, call.done = utcnow(), True
        return
    if new.route and not is_open(settings.config.business_hours, tz=options.timezone):
        call.routed, call.voicemail = Routed.voicemail, True
        return
    voice = settings.voice.get(call.inbox_id)
    if new.route and voice is not None and voice.menu:
        call.routed = Routed.menu  # operators are offered the call once the caller has chosen
        return
    call.offered_user_ids = await choose_operators(session, call.inbox_id, limit=options.ring_group,
                                                   acw_limit=options.acw_limit)
    if new.route:
        call.routed = Routed.dial if call.offered_user_ids else Routed.queue


async def _announce_ring(session: AsyncSession, call: Call, customer: profiles.CustomerRows | None,
                         options: CallOptions) -> None:
    await announce.ringing(session, call, customer, region=options.region,
                           dormant_after_days=options.dormant_after_days)


async def operator_free_for(session: AsyncSession, provider: str, call_id: str, *,
                            options: CallOptions) -> bool:
    """Whether a call waiting in its inbox's queue could be offered to someone right now."""
    call = await _call_by_provider_id(session, provider, call_id)
    return (call is not None and _waiting(call)
            and bool(await choose_operators(session, call.inbox_id, limit=1,
                                            acw_limit=options.acw_limit)))


async def offer_queued(
    session: AsyncSession, provider: str, call_id: str, *, options: CallOptions
) -> Ringing | None:
    """Offer a caller who left the queue to the operators free now, popping their screens.

    Nobody free any more (another caller was quicker) leaves the call queued. None when the
    call is unknown; a call already offered is answered as it was (a retried request).
    """
    call = await _locked(session, provider, call_id)
    if call is None:
        return None
    if _waiting(call):
        call.offered_user_ids = await choose_operators(session, call.inbox_id,
                                                       limit=options.ring_group,
                                                       acw_limit=options.acw_limit)
        if call.offered_user_ids:
            call.routed = Routed.dial
            customer = (await profiles.customer_rows(session, call.customer_id)
                        if call.customer_id is not None else None)
            await _announce_ring(session, call, customer, options)
    inbox = await session.get(Inbox, call.inbox_id)
    found = await cti_settings.cached(session, options.region)
    return Ringing(call, False, inbox.name if inbox else "default", found.config,
                   found.voice.get(call.inbox_id) or VoiceConfig())


async def menu_choice(
    session: AsyncSession, provider: str, call_id: str, digit: str | None, *, options: CallOptions
) -> Ringing | None:
    """The caller pressed ``digit`` (None: nothing) in the keypad menu: the call goes to that
    option's inbox with its tag, and is offered to whoever is free there (or queues)."""
    call = await _locked(session, provider, call_id)
    if call is None:
        return None
    if call.routed == Routed.menu and call.state == CallState.ringing:
        found = await cti_settings.cached(session, options.region)
        await ivr.apply_choice(session, call, found.voice.get(call.inbox_id), digit)
        call.routed = Routed.queue
    return await offer_queued(session, provider, call_id, options=options)


async def request_callback(session: AsyncSession, provider: str, call_id: str, *,
                           options: CallOptions) -> Call | None:
    """A queued caller asked to be called back: a callback task (ticket) for their inbox."""
    call = await _locked(session, provider, call_id)
    if call is None or not await _applied(session, call, "callback", None):
        return call
    await ivr.callback_task(session, call, region=options.region, timezone=options.timezone,
                            reopen_window=options.reopen_window)
    return call


async def voice_for_call(session: AsyncSession, provider: str, call_id: str, *,
                         options: CallOptions) -> VoiceConfig:
    """What callers to the call's inbox hear (the defaults for an unknown call)."""
    call = await _call_by_provider_id(session, provider, call_id)
    found = await cti_settings.cached(session, options.region)
    return (found.voice.get(call.inbox_id) if call is not None else None) or VoiceConfig()


def _waiting(call: Call) -> bool:
    # Ringing in a queue, or transferred to one and waiting there for someone to take it.
    return call.routed == Routed.queue and (
        call.state == CallState.ringing
        or (call.state == CallState.answered and call.operator_id is None))


async def answer(
    session: AsyncSession, provider: str, call_id: str, *, key: str, operator_id: int | None = None,
    answered_by: str | None = None, sequence: int | None = None, at: datetime | None = None,
    options: CallOptions,
) -> Call | None:
    """Someone (an operator, or voicemail) picked up. None when the call is unknown."""
    call = await _locked(session, provider, call_id)
    if call is None or not await _applied(session, call, key, sequence):
        return call
    if call.state == CallState.ended or _is_late(call, sequence):
        return call
    _advance(call, sequence)
    if call.state == CallState.answered:
        if (operator_id is not None and operator_id != call.operator_id
                and await transfer.picked_up(session, call, operator_id)):
            return call
        if operator_id is not None and call.operator_id is None:
            call.operator_id = operator_id
            await _take_call(session, call, options)
        return call
    voicemail = (answered_by or "").strip().lower() == VOICEMAIL
    call.state, call.answered_at, call.voicemail = CallState.answered, at or utcnow(), voicemail
    call.operator_id = call.operator_id if voicemail else (operator_id or call.operator_id)
    # As in Zammad's CTI: an answer, even by voicemail, counts as done until the hang-up says
    # nobody but the voicemail took the call.
    call.done = True
    if not voicemail:
        await _take_call(session, call, options)
    return call


async def hangup(
    session: AsyncSession, provider: str, call_id: str, *, key: str, cause: str | None = None,
    duration: int | None = None, sequence: int | None = None, at: datetime | None = None,
    options: CallOptions,
) -> Call | None:
    """The call ended; an inbound call nobody answered becomes a missed call with a ticket."""
    call = await _locked(session, provider, call_id)
    if call is None or not await _applied(session, call, key, sequence):
        return call
    if call.state == CallState.ended:
        return call
    _advance(call, sequence)
    now = at or utcnow()
    if call.state == CallState.ringing and call.routed == Routed.dial and duration:
        # Dialled with answerOnBridge: the caller's leg is answered only when an operator is.
        call.state, call.answered_at, call.done = CallState.answered, now - timedelta(seconds=duration), True
        await _take_call(session, call, options)
    answered = call.state == CallState.answered and not call.voicemail
    call.state, call.ended_at, call.cause = CallState.ended, now, (cause or "")[:40] or None
    if call.direction == CallDirection.inbound and not answered:
        call.done = cause in NOT_MISSED_CAUSES
        if not call.done:
            await threads.missed_ticket(session, call, region=options.region,
                                        timezone=options.timezone,
                                        reopen_window=options.reopen_window)
            announce.publish(session, call, events.CallMissed)
    elif answered:
        await threads.ended_entry(session, call)
        await wrapup.begin(session, call, limit=options.acw_limit)
    announce.publish(session, call, events.CallEnded)
    return call


async def store_recording(session: AsyncSession, provider: str, call_id: str, *, key: str,
                          url: str, seconds: int | None = None) -> Call | None:
    """Keep the recording URL a provider reported (the first one wins) and show it in the
    call's ticket; a voicemail left on a call nobody answered gets its missed-call ticket."""
    call = await _locked(session, provider, call_id)
    if call is None or not await _applied(session, call, key, None):
        return call
    if call.recording_url is None:
        call.recording_url, call.recording_seconds = url[:500], seconds
        await threads.recording_entry(session, call, key="recording")
    return call


async def note_event(session: AsyncSession, provider: str, call_id: str, *, key: str,
                     sequence: int | None) -> Call | None:
    """Record a progress event that changes nothing but the sequence high-water mark."""
    call = await _locked(session, provider, call_id)
    if call is not None and await _applied(session, call, key, sequence) and not _is_late(call, sequence):
        _advance(call, sequence)
    return call


async def _call_by_provider_id(session: AsyncSession, provider: str, call_id: str) -> Call | None:
    return await session.scalar(select(Call).where(col(Call.provider) == provider,
                                                   col(Call.call_id) == call_id))


async def _locked(session: AsyncSession, provider: str, call_id: str) -> Call | None:
    await serialize_on(session, f"call:{provider}:{call_id}")
    return await session.scalar(select(Call).where(
        col(Call.provider) == provider, col(Call.call_id) == call_id).with_for_update())


async def _applied(session: AsyncSession, call: Call, key: str, sequence: int | None) -> bool:
    """Remember ``key`` for this call; False when it was seen before (a retry)."""
    assert call.id is not None
    seen = await session.scalar(select(col(CallEvent.id)).where(
        col(CallEvent.call_ref) == call.id, col(CallEvent.key) == key[:120]))
    if seen is not None:
        return False
    session.add(CallEvent(call_ref=call.id, key=key[:120], sequence=sequence))
    return True


def _is_late(call: Call, sequence: int | None) -> bool:
    return sequence is not None and sequence < call.last_sequence


def _advance(call: Call, sequence: int | None) -> None:
    if sequence is not None:
        call.last_sequence = max(call.last_sequence, sequence)


async def _take_call(session: AsyncSession, call: Call, options: CallOptions) -> None:
    """An answered inbound call joins the caller's open ticket or opens one, for the operator."""
    if call.direction == CallDirection.inbound:
        await threads.join_ticket(session, call, region=options.region,
                                  reopen_window=options.reopen_window)
    announce.publish_answered(session, call)
