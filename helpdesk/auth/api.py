"""Signing in for the API, and the caller's own sessions and tokens."""

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from helpdesk.audit import service as audit
from helpdesk.auth import sealing, service, totp
from helpdesk.auth.dependencies import CurrentUser, RowId, client_ip, login_attempt
from helpdesk.auth.models import (
    AuthSessionList,
    AuthSessionPublic,
    Credentials,
    SessionKind,
    Token,
    User,
    UserPublic,
)
from helpdesk.config import SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, Forbidden, HelpdeskError, Unauthorized

router = APIRouter(prefix="/api/auth", tags=["auth"])


async def _credentials(request: Request) -> Credentials:
    """JSON or form bodies both work, as the contract promises."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("application/json"):
            raw: Any = await request.json()
        else:
            raw = dict(await request.form())
        return Credentials.model_validate(raw)
    except (ValueError, ValidationError):
        raise BadInput("email and password are required") from None


@router.post("/token", response_model=Token, responses={401: {}, 403: {}, 423: {}, 429: {}})
async def token(request: Request, session: SessionDep, settings: SettingsDep) -> Token:
    """Exchange email and password (and ``otp`` with two-factor sign-in) for a bearer token."""
    credentials = await _credentials(request)
    attempt = login_attempt(request, credentials.email)
    try:
        user = await service.authenticate(session, attempt=attempt, password=credentials.password)
        await _second_factor(session, attempt, user, credentials.otp, sealing.of(settings))
    except HelpdeskError:
        await session.commit()  # the failure count and audit row must survive the refusal
        raise
    await service.succeed(session, attempt, user)
    access = await service.sign_in(session, secret_key=settings.secret_key, user=user,
                                   kind=SessionKind.api, ttl_seconds=settings.token_ttl_seconds,
                                   ip=attempt.ip, user_agent=request.headers.get("user-agent"))
    await session.commit()
    return Token(access_token=access)


async def _second_factor(session: SessionDep, attempt: service.Attempt, user: User,
                         otp: str | None, sealer: sealing.Sealer) -> None:
    if not user.totp_enabled:
        if user.role in await totp.required_roles(session):
            raise Forbidden("two-factor sign-in is required for your role: set it up on the "
                            "web first", totp_setup_required=True)
        return
    if not otp:
        raise Unauthorized("two-factor code required", otp_required=True)
    if not await totp.verify(session, user, otp, sealer):
        try:
            await service.fail(session, attempt, user)
        except Unauthorized:
            if not totp.key_unreadable(user, sealer):
                raise
            raise Unauthorized("the stored authenticator key cannot be read since the server's "
                               "secret key changed: send a recovery code as otp, or ask an "
                               "administrator to reset two-factor sign-in",
                               totp_key_unreadable=True) from None


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return UserPublic.model_validate(user.model_dump())


@router.get("/sessions", response_model=AuthSessionList)
async def sessions(request: Request, session: ReadSessionDep, user: CurrentUser) -> AuthSessionList:
    """The caller's signed-in browsers and API tokens that still work, newest first."""
    assert user.id is not None
    current = request.state.auth_session_id
    rows = await service.live_sessions(session, user.id)
    return AuthSessionList(items=[AuthSessionPublic.model_validate(
        {**row.model_dump(), "current": row.id == current}) for row in rows])


@router.delete("/sessions/{session_id}", status_code=204, responses={404: {}})
async def revoke_session(request: Request, session_id: RowId, session: SessionDep,
                         user: CurrentUser) -> Response:
    """End one of the caller's sessions or tokens at once."""
    await service.revoke_own(session, user, session_id, ip=client_ip(request))
    await session.commit()
    return Response(status_code=204)


@router.post("/logout", status_code=204)
async def logout(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """End the session or token this request was made with."""
    assert user.id is not None
    await service.revoke(session, user_id=user.id, session_id=request.state.auth_session_id)
    audit.record(session, action="logout", actor_id=user.id, actor_email=user.email,
                 ip=client_ip(request))
    await session.commit()
    return Response(status_code=204)


@router.post("/logout-everywhere", status_code=204)
async def logout_everywhere(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """End every session and token of the caller, this one included."""
    await service.revoke_everywhere(session, user, ip=client_ip(request))
    await session.commit()
    return Response(status_code=204)
