"""The caller log, after-call work, click-to-call, and the admin's CTI settings."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin, CurrentUser, SettingsDep
from helpdesk.auth.models import User
from helpdesk.calls import service
from helpdesk.calls.models import Call, CallIds, CallPage, CallPublic, CtiConfig, OutboundCall, WrapUp
from helpdesk.config import Settings
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, NotFound
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
    items, next_cursor = await service.list_calls(session, user, done=done, cursor=cursor,
                                                  limit=limit)
    return CallPage(items=items, next_cursor=next_cursor)


@router.post("/api/calls/done")
async def mark_all_done(body: CallIds, session: SessionDep, user: CurrentUser) -> dict[str, int]:
    """Mark several calls done (missed calls called back, voicemails heard)."""
    count = await service.mark_done(session, user, body.ids)
    await session.commit()
    return {"updated": count}


@router.post("/api/calls/outbound", response_model=CallPublic, status_code=201)
async def call_out(
    body: OutboundCall, session: SessionDep, user: CurrentUser, settings: SettingsDep,
    request: Request,
) -> CallPublic:
    """Click-to-call: ring the operator's browser phone, then the customer."""
    call = await place_call(request, session, user=user, to=body.to, customer_id=body.customer_id,
                            settings=settings)
    return CallPublic.model_validate(call)


async def place_call(request: Request, session: AsyncSession, *, user: User, to: str,
                     customer_id: int | None, settings: Settings) -> Call:
    """Record the call, then ask the provider to place it (the row exists before its callbacks).

    Commits twice; 404 when click-to-call is not configured, 502 when the provider refuses.
    """
    dialer: service.Dialer | None = getattr(request.app.state, "dialer", None)
    if dialer is None:
        raise NotFound("click-to-call is not configured")
    if customer_id is not None and not await service.customer_exists(session, customer_id):
        raise BadInput("customer_id: no such customer")
    call = await service.start_outbound(session, user=user, to=to, customer_id=customer_id,
                                        options=service.options_from(settings))
    await session.commit()
    assert user.id is not None
    try:
        sid = await dialer(to=call.to_number, caller_id=call.from_number,
                           identity=service.client_identity(user.id))
    except service.DialFailed:
        service.failed(call, "failed")
        await session.commit()
        raise
    service.placed(call, sid)
    await session.commit()
    return call


@router.post("/api/calls/{call_id}/done", response_model=CallPublic)
async def mark_done(call_id: int, session: SessionDep, user: CurrentUser) -> CallPublic:
    """Mark one call done."""
    call = await service.visible_call(session, call_id, user)
    call.done = True
    await session.commit()
    return CallPublic.model_validate(call)


@router.post("/api/calls/{call_id}/wrapup", response_model=MessagePublic, status_code=201)
async def wrap_up(call_id: int, body: WrapUp, session: SessionDep, user: CurrentUser) -> MessagePublic:
    """After-call work: notes onto the call's ticket, optionally a new status."""
    call = await service.visible_call(session, call_id, user)
    message = await service.wrap_up(session, call, body, user=user)
    await session.commit()
    return message


@router.get("/api/admin/cti", response_model=CtiConfig)
async def get_cti(session: ReadSessionDep, _: Admin) -> CtiConfig:
    """The blocked caller ids, outbound routing table, default caller id and business hours."""
    return await service.cti_config(session)


@router.put("/api/admin/cti", response_model=CtiConfig)
async def put_cti(body: CtiConfig, session: SessionDep, admin: Admin, request: Request) -> CtiConfig:
    """Replace the CTI settings (audited)."""
    saved = await service.save_cti_config(session, body)
    audit.record(session, action="cti.update", actor_id=admin.id, actor_email=admin.email,
                 target_type="cti_settings", target_id=1,
                 ip=request.client.host if request.client else None)
    await session.commit()
    return saved
