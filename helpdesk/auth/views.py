"""Signing in (with the one-time code step) and out of the pages, the language switch,
preferences, and the users admin page."""

import re
from typing import Annotated, Any
from urllib.parse import unquote, urlencode, urlsplit

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth import sealing, service, totp
from helpdesk.auth.dependencies import (
    SESSION_COOKIE,
    Admin,
    CurrentUser,
    client_ip,
    login_attempt,
    signed_token,
)
from helpdesk.auth.models import Role, SessionKind, User
from helpdesk.config import Settings, SettingsDep
from helpdesk.db import ReadSessionDep, SessionDep, utcnow
from helpdesk.errors import BadInput, HelpdeskError, NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.web import i18n, templating
from helpdesk.web.messages import N_
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=1024)]
Next = Annotated[str, Form(max_length=500)]
PENDING_COOKIE = "helpdesk_2fa"  # between the password and the one-time code, for five minutes
PENDING_SALT = "helpdesk.2fa"
PENDING_SECONDS = 300
# Refusals the sign-in pages show, marked for the catalogues.
KNOWN = [
    N_("too many failed sign-ins from your address; try again later"),
    N_("too many sign-in attempts from your address; wait a minute"),
    N_("this account is locked after failed sign-ins from many places; an administrator can unlock it"),
    N_("two-factor code required"),
    N_("two-factor sign-in is required for your role: set it up on the web first"),
    N_("current password: wrong"),
    N_("no such live session"),
    N_("two-factor sign-in is required for your role and cannot be turned off"),
    N_("Signed out everywhere"),
    N_("Two-factor sign-in reset"),
]
# Characters browsers drop or reinterpret in a Location (tabs, line breaks, backslashes), which
# turn "/\t/evil.example" into "//evil.example": a next page is a plain path, nothing else.
_LOCAL_PATH = re.compile(r"^/(?![/\\])[\x21-\x7e]*$")


def safe_next(target: str | None) -> str:
    """Only a same-origin path: never an open redirect, never a header-breaking character.

    The path is checked as given and once percent-decoded, so no layer that decodes it again
    (a proxy, a browser's quirks) finds a second slash, a backslash or a control character.
    """
    if target and all(_local_path(form) for form in (target, unquote(target))):
        return target
    return "/inbox"


def _local_path(target: str) -> bool:
    if not _LOCAL_PATH.match(target) or "\\" in target:
        return False
    parts = urlsplit(target)
    return not parts.scheme and not parts.netloc


@router.get("/login")
async def login_page(request: Request, next: Annotated[str, Query(max_length=500)] = "") -> Response:
    """The sign-in form."""
    return templating.render(request, "login.html", {"next": safe_next(next)}, user=None)


@router.post("/login")
async def login(
    request: Request, session: SessionDep, settings: SettingsDep, email: Text, password: Text,
    next: Next = "/inbox",
) -> Response:
    """Check the password; then the one-time code when the user needs one, else sign in."""
    attempt = login_attempt(request, email)
    try:
        user = await service.authenticate(session, attempt=attempt, password=password)
    except HelpdeskError as exc:
        await session.commit()  # the failure count and the audit row must survive the refusal
        return _login_refused(request, "login.html", exc, {"next": safe_next(next), "email": email})
    if user.totp_enabled or user.role in await totp.required_roles(session):
        await session.commit()
        response = templating.redirect(request, "/login/two-factor?" + urlencode({"next": safe_next(next)}))
        _set_cookie(response, request, settings, PENDING_COOKIE, _pending_token(settings, user),
                    PENDING_SECONDS)
        return response
    return await _complete(request, session, settings, attempt, user, safe_next(next))


def _login_refused(request: Request, template: str, exc: HelpdeskError,
                   context: dict[str, Any]) -> Response:
    locked = exc.extra.get("locked_until") if exc.status_code == 423 else None
    return templating.render(request, template, {**context, "error": exc.message, "locked_until": locked},
                             user=None, status=exc.status_code)


async def _complete(request: Request, session: AsyncSession, settings: Settings,
                    attempt: service.Attempt, user: User, target: str,
                    page: Response | None = None) -> Response:
    """Sign ``user`` in: a new server-side session and its cookie."""
    await service.succeed(session, attempt, user)
    cookie = await service.sign_in(session, secret_key=settings.secret_key, user=user,
                                   kind=SessionKind.browser, ttl_seconds=settings.token_ttl_seconds,
                                   ip=attempt.ip, user_agent=request.headers.get("user-agent"))
    await session.commit()
    response = page or templating.redirect(request, target)
    set_session_cookie(response, request, settings, cookie)
    response.delete_cookie(PENDING_COOKIE, path="/")
    response.set_cookie(i18n.LANG_COOKIE, user.language, max_age=365 * 86400, samesite="lax",
                        httponly=True, path="/")
    return response


def set_session_cookie(response: Response, request: Request, settings: Settings, value: str) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over https."""
    _set_cookie(response, request, settings, SESSION_COOKIE, value, settings.token_ttl_seconds)


def _set_cookie(response: Response, request: Request, settings: Settings, name: str, value: str,
                max_age: int) -> None:
    secure = settings.public_url.startswith("https://") or request.url.scheme == "https"
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=secure,
                        path="/")


def _pending_token(settings: Settings, user: User) -> str:
    return URLSafeTimedSerializer(settings.secret_key, salt=PENDING_SALT).dumps({"uid": user.id})


async def _pending_user(request: Request, session: AsyncSession, settings: Settings) -> User | None:
    """The user who gave the right password in the last five minutes, waiting for their code."""
    try:
        data = URLSafeTimedSerializer(settings.secret_key, salt=PENDING_SALT).loads(
            request.cookies.get(PENDING_COOKIE, ""), max_age=PENDING_SECONDS)
    except (BadSignature, SignatureExpired):
        return None
    uid = data.get("uid") if isinstance(data, dict) else None
    user = await session.get(User, uid) if isinstance(uid, int) else None
    return user if user is not None and user.is_active else None


@router.get("/login/two-factor")
async def second_factor_page(
    request: Request, session: ReadSessionDep, settings: SettingsDep,
    next: Annotated[str, Query(max_length=500)] = "",
) -> Response:
    """The one-time code, or setting up the authenticator when the role requires it."""
    user = await _pending_user(request, session, settings)
    if user is None:
        return templating.redirect(request, "/login?" + urlencode({"next": safe_next(next)}))
    return templating.render(request, "login_2fa.html", _factor_context(user, safe_next(next)), user=None)


def _factor_context(user: User, target: str, secret: str | None = None) -> dict[str, Any]:
    if user.totp_enabled:
        return {"next": target, "enroll": False}
    secret = secret or totp.new_secret()
    return {"next": target, "enroll": True, "secret": secret,
            "uri": totp.provisioning_uri(secret, user.email)}


@router.post("/login/two-factor")
async def second_factor(
    request: Request, session: SessionDep, settings: SettingsDep,
    code: Annotated[str, Form(max_length=64)], next: Next = "/inbox",
    secret: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    """Check the code (or a recovery code); on success sign in. Failures count like passwords'."""
    user = await _pending_user(request, session, settings)
    if user is None:
        return templating.redirect(request, "/login?" + urlencode({"next": safe_next(next)}))
    attempt = login_attempt(request, user.email)
    context = _factor_context(user, safe_next(next), secret or None)
    try:
        await service.check_attempt(session, attempt)
        if user.totp_enabled:
            if not await totp.verify(session, user, code, sealing.of(settings)):
                await service.fail(session, attempt, user)
            return await _complete(request, session, settings, attempt, user, safe_next(next))
        codes = await totp.enable(session, user, secret=secret, code=code,
                                  sealer=sealing.of(settings)) if secret else None
        if codes is None:
            await service.fail(session, attempt, user)
    except HelpdeskError as exc:
        await session.commit()
        if exc.status_code == 401:
            exc = HelpdeskError(_code_refused(user, settings), 401)
        return _login_refused(request, "login_2fa.html", exc, context)
    audit.record(session, action="totp.enable", actor_id=user.id, actor_email=user.email,
                 ip=attempt.ip)
    page = templating.render(request, "login_2fa.html",
                             {"next": safe_next(next), "codes": codes}, user=None)
    return await _complete(request, session, settings, attempt, user, safe_next(next), page)


def _code_refused(user: User, settings: Settings) -> str:
    """Why a code was refused: a wrong code, or a stored key no configured secret key opens."""
    if user.totp_enabled and totp.key_unreadable(user, sealing.of(settings)):
        return N_("your authenticator key can no longer be read here (the server's secret key was "
                  "changed): sign in with a recovery code, or ask an administrator to reset "
                  "two-factor sign-in")
    return N_("that code did not match; enter the current code from your authenticator app")


@router.post("/logout")
async def logout(request: Request, session: SessionDep, settings: SettingsDep) -> Response:
    """End this browser's session on the server and forget its cookie."""
    token = signed_token(settings, None, request.cookies.get(SESSION_COOKIE))
    found = await service.signed_in(session, token) if token is not None else None
    if found is not None:
        user, session_id = found
        assert user.id is not None
        await service.revoke(session, user_id=user.id, session_id=session_id)
        audit.record(session, action="logout", actor_id=user.id, actor_email=user.email,
                     ip=client_ip(request))
        await session.commit()
    response = templating.redirect(request, "/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/language")
async def switch_language(
    request: Request, session: SessionDep, settings: SettingsDep,
    language: Annotated[str, Form(max_length=8)], next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    """Switch the language: saved on the user when signed in, in a cookie either way."""
    if language not in i18n.LANGUAGES:
        raise BadInput("language: not offered")
    if (user := await _signed_in(request, session, settings)) is not None:
        user.language = language
        await session.commit()
    response = templating.redirect(request, safe_next(next))
    response.set_cookie(i18n.LANG_COOKIE, language, max_age=365 * 86400, samesite="lax",
                        httponly=True, path="/")
    return response


async def _signed_in(request: Request, session: AsyncSession, settings: Settings) -> User | None:
    token = signed_token(settings, None, request.cookies.get(SESSION_COOKIE))
    found = await service.signed_in(session, token) if token is not None else None
    return found[0] if found is not None else None


@router.post("/me")
async def save_preferences(
    request: Request, session: SessionDep, user: CurrentUser,
    language: Annotated[str, Form(max_length=8)], timezone: Annotated[str, Form(max_length=64)],
) -> Response:
    """Save language and time zone."""
    if language not in i18n.LANGUAGES or timezone not in i18n.timezone_names():
        raise BadInput("language or time zone: not offered")
    # ``user`` belongs to the request's read session: change the row through the write session.
    row = await session.get(User, user.id)
    if row is None:
        raise NotFound("user not found")
    row.language, row.timezone = language, timezone
    await session.commit()
    response = templating.redirect(request, "/me")
    response.set_cookie(i18n.LANG_COOKIE, language, max_age=365 * 86400, samesite="lax",
                        httponly=True, path="/")
    return response


# ---- admin: users ----------------------------------------------------------------------------


async def _users_context(session: AsyncSession) -> dict[str, object]:
    now = utcnow()
    users = await service.all_users(session)
    return {"users": users, "inboxes": await inbox_service.all_inboxes(session),
            "memberships": await inbox_service.memberships(session), "roles": list(Role), "now": now,
            "locked": [u for u in users if u.locked_until is not None and u.locked_until > now],
            "totp_roles": await totp.required_roles(session)}


async def _users_block(request: Request, admin: User, notice: str) -> Response:
    async with fresh_reader(request) as reader:
        context = {**await _users_context(reader), "notice": notice}
    return templating.render(request, "admin/users.html", context, user=admin, block="users")


@router.get("/admin/users")
async def users_page(request: Request, session: ReadSessionDep, admin: Admin) -> Response:
    """Every staff account, with lockout state and inboxes."""
    return templating.render(request, "admin/users.html", await _users_context(session), user=admin)


@router.post("/admin/users")
async def create_user(
    request: Request, session: SessionDep, admin: Admin, email: Text, name: Text, password: Text,
    role: Annotated[Role, Form()], inbox: Annotated[list[str] | None, Form(max_length=50)] = None,
) -> Response:
    """Add a staff account."""
    user = await service.create_user(session, email=email, name=name, role=role, password=password)
    assert user.id is not None
    await inbox_service.join_named(session, user_id=user.id, names=inbox or [])
    audit.record(session, action="user.create", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user.id, ip=client_ip(request), role=str(role))
    await session.commit()
    return await _users_block(request, admin, "User created")


@router.post("/admin/users/{user_id}")
async def change_user(
    request: Request, session: SessionDep, admin: Admin, user_id: int,
    role: Annotated[Role, Form()], active: Annotated[bool, Form()] = False,
    inbox: Annotated[list[int] | None, Form(max_length=200)] = None,
) -> Response:
    """Change role, active flag and inboxes of an account."""
    target = await _target(session, user_id)
    if target.id == admin.id and (role != Role.admin or not active):
        raise BadInput("you cannot demote or deactivate yourself")
    before = {"role": str(target.role), "active": target.is_active}
    target.role, target.is_active = role, active
    if not active:
        await service.revoke(session, user_id=user_id)  # a disabled account keeps no session
    await inbox_service.set_memberships(session, user_id=user_id, inbox_ids=set(inbox or []))
    audit.record(session, action="user.update", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user_id, ip=client_ip(request), before=before,
                 role=str(role), active=active, inboxes=sorted(inbox or []))
    await session.commit()
    return await _users_block(request, admin, "Saved")


async def _target(session: AsyncSession, user_id: int) -> User:
    target = await session.get(User, user_id)
    if target is None:
        raise NotFound("user not found")
    return target


@router.post("/admin/users/{user_id}/unlock")
async def unlock_user(request: Request, session: SessionDep, admin: Admin, user_id: int) -> Response:
    """Lift the account's lock and the locks on it of every address that failed."""
    target = await _target(session, user_id)
    await service.unlock(target, request.app.state.login_counters)
    audit.record(session, action="user.unlock", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user_id, ip=client_ip(request))
    await session.commit()
    return await _users_block(request, admin, "Unlocked")


@router.post("/admin/users/{user_id}/sign-out")
async def sign_out_user(request: Request, session: SessionDep, admin: Admin, user_id: int) -> Response:
    """End every browser session and API token of the account at once."""
    await _target(session, user_id)
    ended = await service.revoke(session, user_id=user_id)
    audit.record(session, action="user.sign_out", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user_id, ip=client_ip(request), sessions=ended)
    await session.commit()
    return await _users_block(request, admin, "Signed out everywhere")


@router.post("/admin/users/{user_id}/two-factor/reset")
async def reset_two_factor(request: Request, session: SessionDep, admin: Admin, user_id: int) -> Response:
    """For a lost authenticator: two-factor sign-in off, every session ended; set up again at sign-in."""
    target = await _target(session, user_id)
    await totp.disable(session, target)
    await service.revoke(session, user_id=user_id)
    audit.record(session, action="totp.reset", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user_id, ip=client_ip(request))
    await session.commit()
    return await _users_block(request, admin, "Two-factor sign-in reset")


@router.post("/admin/two-factor")
async def require_two_factor(
    request: Request, session: SessionDep, admin: Admin,
    role: Annotated[list[Role] | None, Form(max_length=10)] = None,
) -> Response:
    """Which roles must sign in with a one-time code (each member sets it up at the next sign-in)."""
    roles = set(role or [])
    await totp.set_required_roles(session, roles)
    audit.record(session, action="totp.policy", actor_id=admin.id, actor_email=admin.email,
                 ip=client_ip(request), roles=sorted(str(r) for r in roles))
    await session.commit()
    return await _users_block(request, admin, "Saved")
