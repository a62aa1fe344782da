"""The caller log, after-call work, click-to-call, and the admin's CTI settings."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import settings_api
from helpdesk.auth.dependencies import Admin, CurrentUser
from helpdesk.auth.models import User
from helpdesk.calls import callbacks, service, transfer, wrapup
from helpdesk.calls import log as call_log
from helpdesk.calls import operators as call_operators
from helpdesk.calls import outbound as call_outbound
from helpdesk.calls import settings as cti_settings
from helpdesk.calls.models import (
    Call,
    CallbackResult,
    CallIds,
    CallPage,
    CallPublic,
    CallTransfer,
    OutboundCall,
    TransferPublic,
    TransferRequest,
    WrapUp,
    WrapupPublic,
    WrapupView,
)
from helpdesk.calls.settings_models import CtiConfig, VoiceConfig
from helpdesk.config import Settings, SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, Conflict, NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.inboxes.models import Inbox
from helpdesk.realtime import presence
from helpdesk.tickets.models import MessagePublic

router = APIRouter(tags=["calls"])


@router.get("/api/calls", response_model=CallPage)
async def list_calls(
    session: ReadSessionDep,
    user: CurrentUser,
    done: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CallPage:
    """The caller log of the caller's inboxes, newest first."""
    items, next_cursor = await call_log.list_calls(session, user, done=done, cursor=cursor,
                                                  limit=limit)
    return CallPage(items=items, next_cursor=next_cursor)


@router.get("/api/calls/transfer-targets")
async def transfer_targets(session: ReadSessionDep, user: CurrentUser) -> dict[str, list[dict[str, Any]]]:
    """Who a call can be handed to: active staff (online first) and every inbox's queue."""
    staff = list(await session.execute(select(col(User.id), col(User.name)).where(
        col(User.is_active).is_(True), col(User.id) != user.id).order_by(col(User.name))))
    online = set(await presence.online_among(session))
    inboxes = await inbox_service.inboxes_by_id(session, None)
    people = [{"id": uid, "name": name, "online": uid in online} for uid, name in staff]
    people.sort(key=lambda p: not p["online"])
    return {"operators": people, "inboxes": [{"id": i.id, "name": i.name} for i in inboxes]}


@router.post("/api/calls/done")
async def mark_all_done(body: CallIds, session: SessionDep, user: CurrentUser) -> dict[str, int]:
    """Mark several calls done (missed calls called back, voicemails heard)."""
    count = await call_log.mark_done(session, user, body.ids)
    await session.commit()
    return {"updated": count}


@router.post("/api/calls/outbound", response_model=CallPublic, status_code=201)
async def call_out(
    body: OutboundCall, session: SessionDep, user: CurrentUser, settings: SettingsDep,
    request: Request,
) -> CallPublic:
    """Click-to-call: ring the operator's browser phone, then the customer."""
    call = await place_call(request, session, user=user, to=body.to, customer_id=body.customer_id,
                            settings=settings, ticket_id=body.ticket_id, callback_of=body.callback_of)
    return CallPublic.model_validate(call)


async def place_call(request: Request, session: AsyncSession, *, user: User, to: str,
                     customer_id: int | None, settings: Settings, ticket_id: int | None = None,
                     callback_of: int | None = None) -> Call:
    """Record the call, then ask the provider to place it (the row exists before its callbacks).

    ``ticket_id``: the ticket the call belongs to; ``callback_of``: the missed call it returns.

    Commits twice; 404 when click-to-call is not configured, 502 when the provider refuses.
    """
    dialer: call_outbound.Dialer | None = getattr(request.app.state, "dialer", None)
    if dialer is None:
        raise NotFound("click-to-call is not configured")
    if customer_id is not None and not await call_outbound.customer_exists(session, customer_id):
        raise BadInput("customer_id: no such customer")
    call = await call_outbound.start_outbound(session, user=user, to=to, customer_id=customer_id,
                                        options=service.options_from(settings))
    await callbacks.attach_outbound(session, call, user=user, ticket_id=ticket_id,
                                    callback_of=callback_of)
    await session.commit()
    assert user.id is not None
    try:
        sid = await dialer(to=call.to_number, caller_id=call.from_number,
                           identity=call_operators.client_identity(user.id))
    except call_outbound.DialFailed:
        call_outbound.failed(call, "failed")
        await session.commit()
        raise
    call_outbound.placed(call, sid)
    await session.commit()
    return call


@router.post("/api/calls/{call_id}/done", response_model=CallPublic)
async def mark_done(call_id: int, session: SessionDep, user: CurrentUser) -> CallPublic:
    """Mark one call done."""
    call = await call_log.visible_call(session, call_id, user)
    call.done = True
    await session.commit()
    return CallPublic.model_validate(call)


@router.post("/api/calls/{call_id}/wrapup", response_model=MessagePublic, status_code=201)
async def wrap_up(call_id: int, body: WrapUp, session: SessionDep, user: CurrentUser,
                  settings: SettingsDep) -> MessagePublic:
    """After-call work: notes and outcome onto the call's ticket, optionally a new status and
    follow-up day; ends (and times) the operator's after-call work."""
    call = await call_log.visible_call(session, call_id, user)
    message = await wrapup.submit(session, call, body, user=user,
                                  dispositions=settings.call_dispositions)
    await session.commit()
    return message


@router.get("/api/calls/{call_id}/wrapup", response_model=WrapupView)
async def wrapup_state(call_id: int, session: ReadSessionDep, user: CurrentUser,
                       settings: SettingsDep) -> WrapupView:
    """What the wrap-up panel needs: the call, its after-call work so far, the outcome codes."""
    call = await call_log.visible_call(session, call_id, user)
    state = await wrapup.state_of(session, call)
    return WrapupView(call=CallPublic.model_validate(call),
                      wrapup=WrapupPublic.model_validate(state) if state else None,
                      dispositions=settings.call_dispositions,
                      acw_limit_seconds=settings.acw_limit_seconds)


@router.post("/api/calls/{call_id}/callback", response_model=CallPublic)
async def callback_result(call_id: int, body: CallbackResult, session: SessionDep,
                          user: CurrentUser) -> CallPublic:
    """What came of calling back a missed call or voicemail; reaching the caller marks it done."""
    call = await call_log.visible_call(session, call_id, user)
    await callbacks.record_result(session, call, body, user=user)
    await session.commit()
    return CallPublic.model_validate(call)


async def _menu_names_inboxes(session: AsyncSession, _: int, config: VoiceConfig) -> None:
    for option in config.menu:
        if option.inbox_id is not None and await session.get(Inbox, option.inbox_id) is None:
            raise BadInput(f"menu {option.digit}: no such inbox")


CTI_SETTINGS = settings_api.Document[CtiConfig](
    load=lambda session, _: cti_settings.cti_config(session),
    save=lambda session, _, config: cti_settings.save_cti_config(session, config),
    action="cti.update", target_type="cti_settings")
VOICE_SETTINGS = settings_api.Document[VoiceConfig](
    load=cti_settings.voice_config, save=cti_settings.save_voice_config, check=_menu_names_inboxes,
    action="inbox.voice.update", target_type="inbox", per_inbox=True)


@router.get("/api/admin/cti", response_model=CtiConfig)
async def get_cti(session: ReadSessionDep, _: Admin) -> CtiConfig:
    """The blocked caller ids, outbound routing table, default caller id and business hours."""
    return await CTI_SETTINGS.read(session)


@router.put("/api/admin/cti", response_model=CtiConfig)
async def put_cti(body: CtiConfig, session: SessionDep, admin: Admin, request: Request) -> CtiConfig:
    """Replace the CTI settings (audited)."""
    return await CTI_SETTINGS.replace(session, body, actor=admin, request=request)


@router.get("/api/admin/inboxes/{inbox_id}/voice", response_model=VoiceConfig)
async def get_voice(inbox_id: int, session: ReadSessionDep, _: Admin) -> VoiceConfig:
    """What the inbox's callers hear: greeting, keypad menu, hold music, callback offer, closed
    hours, recording."""
    return await VOICE_SETTINGS.read(session, inbox_id)


@router.put("/api/admin/inboxes/{inbox_id}/voice", response_model=VoiceConfig)
async def put_voice(inbox_id: int, body: VoiceConfig, session: SessionDep, admin: Admin,
                    request: Request) -> VoiceConfig:
    """Replace what the inbox's callers hear (audited); menu options must name real inboxes."""
    return await VOICE_SETTINGS.replace(session, body, actor=admin, request=request, key=inbox_id)


@router.post("/api/calls/{call_id}/transfer", response_model=TransferPublic, status_code=201)
async def start_transfer(call_id: int, body: TransferRequest, session: SessionDep, user: CurrentUser,
                         settings: SettingsDep, request: Request) -> TransferPublic:
    """Hand the call to an operator or an inbox's queue, blind or consulting first (warm); the
    card pops for the receiver with the notes. 409 when the call is not in progress or is
    already being transferred; 502 when the phone provider refused (nothing is kept then)."""
    call = await call_log.visible_call(session, call_id, user)
    options = service.options_from(settings)
    receivers = ([body.to_user_id] if body.to_user_id is not None else
                 await call_operators.choose_operators(session, body.to_inbox_id or 0,
                                                limit=options.ring_group,
                                                acw_limit=options.acw_limit))
    moved = await transfer.start(session, call, body, by=user, receivers=receivers,
                                 pop=transfer.Pop(options.region, options.dormant_after_days))
    switch = _switch(request, call)
    if switch is not None:
        inbox = await session.get(Inbox, body.to_inbox_id) if body.to_inbox_id else None
        await switch.start(call, moved, inbox_name=inbox.name if inbox else None)
    await session.commit()
    return TransferPublic.model_validate(moved)


@router.post("/api/calls/{call_id}/transfer/complete", response_model=CallPublic)
async def complete_transfer(call_id: int, session: SessionDep, user: CurrentUser,
                            request: Request) -> CallPublic:
    """The receiver takes the call (the first operator ends a consultation, or the receiver
    accepts): the operator changes and the ticket moves. 409 with no transfer under way."""
    call = await call_log.visible_call(session, call_id, user)
    moved = await _open_or_409(session, call)
    receiver = moved.to_user_id if user.id == moved.from_user_id else user.id
    switch = _switch(request, call)
    if switch is not None:
        await switch.complete(call, moved)
    await transfer.complete(session, call, moved, receiver_id=receiver)
    await session.commit()
    return CallPublic.model_validate(call)


@router.post("/api/calls/{call_id}/transfer/cancel", response_model=TransferPublic)
async def cancel_transfer(call_id: int, session: SessionDep, user: CurrentUser,
                          request: Request) -> TransferPublic:
    """Call the transfer off: the first operator keeps the call."""
    call = await call_log.visible_call(session, call_id, user)
    moved = await _open_or_409(session, call)
    switch = _switch(request, call)
    if switch is not None:
        await switch.cancel(call, moved)
    transfer.cancel(call, moved)
    await session.commit()
    return TransferPublic.model_validate(moved)


async def _open_or_409(session: AsyncSession, call: Call) -> CallTransfer:
    moved = await transfer.open_transfer(session, call)
    if moved is None:
        raise Conflict("no transfer is under way on this call")
    return moved


def _switch(request: Request, call: Call) -> transfer.Switch | None:
    # Twilio calls are moved through its REST API; a PBX on the generic CTI moves its own.
    switches: dict[str, transfer.Switch] = getattr(request.app.state, "switches", {})
    return switches.get(call.provider)
