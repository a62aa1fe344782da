"""The signed-in user's own account: password, signed-in browsers and tokens, two-factor sign-in."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from helpdesk.audit import service as audit
from helpdesk.auth import sealing, service, totp
from helpdesk.auth.dependencies import SESSION_COOKIE, CurrentUser, RowId, client_ip
from helpdesk.auth.models import SessionKind, User
from helpdesk.auth.views import set_session_cookie
from helpdesk.config import SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, NotFound
from helpdesk.web import i18n, templating

router = APIRouter(include_in_schema=False)
Secret = Annotated[str, Form(max_length=1024)]


@router.get("/me")
async def account_page(request: Request, session: ReadSessionDep, user: CurrentUser) -> Response:
    """Language and time zone, password, two-factor sign-in, and where the user is signed in."""
    assert user.id is not None
    context = {"zones": i18n.timezone_names(), "sessions": await service.live_sessions(session, user.id),
               "current_session": request.state.auth_session_id,
               "totp_required": user.role in await totp.required_roles(session),
               "codes_left": await totp.unused_codes(session, user.id)}
    return templating.render(request, "me.html", context, user=user)


async def _writable(session: SessionDep, user: User) -> User:
    # ``user`` belongs to the request's read session: change the row through the write session.
    row = await session.get(User, user.id)
    if row is None:
        raise NotFound("user not found")
    return row


@router.post("/me/password")
async def change_password(
    request: Request, session: SessionDep, settings: SettingsDep, user: CurrentUser,
    current: Secret, new: Secret,
) -> Response:
    """A new password ends every session and token; this browser is signed in again."""
    row = await _writable(session, user)
    await service.change_password(session, row, current=current, new=new)
    audit.record(session, action="password.change", actor_id=user.id, actor_email=user.email,
                 ip=client_ip(request))
    cookie = await service.sign_in(session, secret_key=settings.secret_key, user=row,
                                   kind=SessionKind.browser, ttl_seconds=settings.token_ttl_seconds,
                                   ip=client_ip(request), user_agent=request.headers.get("user-agent"))
    await session.commit()
    response = templating.redirect(request, "/me?changed=password")
    set_session_cookie(response, request, settings, cookie)
    return response


@router.post("/me/sessions/{session_id}/revoke")
async def revoke_session(request: Request, session: SessionDep, user: CurrentUser,
                         session_id: RowId) -> Response:
    """End one signed-in browser or API token."""
    await service.revoke_own(session, user, session_id, ip=client_ip(request))
    await session.commit()
    return _signed_out(request) if session_id == request.state.auth_session_id \
        else templating.redirect(request, "/me")


@router.post("/me/sign-out-everywhere")
async def sign_out_everywhere(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """End every session and token of the user, this browser's too."""
    await service.revoke_everywhere(session, user, ip=client_ip(request))
    await session.commit()
    return _signed_out(request)


def _signed_out(request: Request) -> Response:
    response = templating.redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/me/two-factor")
async def two_factor_page(request: Request, session: ReadSessionDep, user: CurrentUser) -> Response:
    """Set up an authenticator app (a new secret each time), or see that it is on."""
    assert user.id is not None
    secret = None if user.totp_enabled else totp.new_secret()
    context = {"secret": secret, "uri": totp.provisioning_uri(secret, user.email) if secret else None,
               "codes_left": await totp.unused_codes(session, user.id),
               "totp_required": user.role in await totp.required_roles(session)}
    return templating.render(request, "two_factor.html", context, user=user)


@router.post("/me/two-factor")
async def enable_two_factor(
    request: Request, session: SessionDep, settings: SettingsDep, user: CurrentUser,
    secret: Annotated[str, Form(max_length=64)], code: Annotated[str, Form(max_length=64)],
) -> Response:
    """Turn two-factor sign-in on once a code from the app matches; show the recovery codes once."""
    row = await _writable(session, user)
    codes = await totp.enable(session, row, secret=secret, code=code, sealer=sealing.of(settings))
    if codes is None:
        raise BadInput("that code did not match; enter the current code from your authenticator app")
    audit.record(session, action="totp.enable", actor_id=user.id, actor_email=user.email,
                 ip=client_ip(request))
    await session.commit()
    context = {"codes": codes, "codes_left": len(codes), "totp_required": False}
    return templating.render(request, "two_factor.html", context, user=row)


@router.post("/me/two-factor/disable")
async def disable_two_factor(request: Request, session: SessionDep, user: CurrentUser,
                             password: Secret) -> Response:
    """Turn two-factor sign-in off (the password proves it is the user), unless the role requires it."""
    row = await _writable(session, user)
    if row.role in await totp.required_roles(session):
        raise BadInput("two-factor sign-in is required for your role and cannot be turned off")
    if not service.password_matches(row, password):
        raise BadInput("current password: wrong")
    await totp.disable(session, row)
    audit.record(session, action="totp.disable", actor_id=user.id, actor_email=user.email,
                 ip=client_ip(request))
    await session.commit()
    return templating.redirect(request, "/me")
