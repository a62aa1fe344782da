"""Signing in and out of the pages, the language switch, preferences, and the users admin page."""

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth import service
from helpdesk.auth.dependencies import (
    SESSION_COOKIE,
    Admin,
    CurrentUser,
    SettingsDep,
    user_id_from_credentials,
)
from helpdesk.auth.models import Role, User
from helpdesk.db import ReadSessionDep, SessionDep, utcnow
from helpdesk.errors import BadInput, HelpdeskError, NotFound
from helpdesk.routing import service as routing
from helpdesk.web import i18n, templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)
Text = Annotated[str, Form(max_length=1024)]


def _safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/inbox"


def _ip(request: Request) -> str | None:
    return request.client.host if request.client else None


@router.get("/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    return templating.render(request, "login.html", {"next": _safe_next(next)}, user=None)


@router.post("/login")
async def login(
    request: Request, session: SessionDep, settings: SettingsDep, email: Text, password: Text,
    next: Annotated[str, Form(max_length=500)] = "/inbox",
) -> Response:
    """Check the password; on success set the session cookie, else show why (lockout included)."""
    policy = service.LoginPolicy(settings.lockout_failures, timedelta(minutes=settings.lockout_minutes))
    try:
        user = await service.authenticate(session, email=email, password=password, ip=_ip(request),
                                          policy=policy)
    except HelpdeskError as exc:
        await session.commit()  # the failure count and the audit row must survive the refusal
        context = {"next": _safe_next(next), "email": email, "error": exc.message,
                   "locked_until": exc.extra.get("locked_until") if exc.status_code == 423 else None}
        return templating.render(request, "login.html", context, user=None, status=exc.status_code)
    await session.commit()
    response = templating.redirect(request, _safe_next(next))
    secure = settings.public_url.startswith("https://") or request.url.scheme == "https"
    response.set_cookie(SESSION_COOKIE, service.issue_token(settings.secret_key, user,
                                                            salt=service.SESSION_SALT),
                        max_age=settings.token_ttl_seconds, httponly=True, samesite="lax",
                        secure=secure, path="/")
    response.set_cookie(i18n.LANG_COOKIE, user.language, max_age=365 * 86400, samesite="lax",
                        httponly=True, path="/")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Forget the session."""
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
    user_id = _signed_in(request, settings)
    if user_id is not None and (user := await session.get(User, user_id)) is not None:
        user.language = language
        await session.commit()
    response = templating.redirect(request, _safe_next(next))
    response.set_cookie(i18n.LANG_COOKIE, language, max_age=365 * 86400, samesite="lax",
                        httponly=True, path="/")
    return response


def _signed_in(request: Request, settings: SettingsDep) -> int | None:
    return user_id_from_credentials(settings, None, request.cookies.get(SESSION_COOKIE))


@router.get("/me")
async def preferences(request: Request, user: CurrentUser) -> Response:
    """The signed-in user's language and time zone."""
    return templating.render(request, "me.html", {"zones": i18n.timezone_names()}, user=user)


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
    return {"users": await service.all_users(session), "inboxes": await routing.all_inboxes(session),
            "memberships": await routing.memberships(session), "roles": list(Role),
            "now": utcnow()}


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
    user = await service.create_user(session, email=email, name=name, role=role, password=password,
                                     inboxes=inbox or [])
    audit.record(session, action="user.create", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user.id, ip=_ip(request), role=str(role))
    await session.commit()
    async with fresh_reader(request) as reader:
        context = {**await _users_context(reader), "notice": "User created"}
    return templating.render(request, "admin/users.html", context, user=admin, block="users")


@router.post("/admin/users/{user_id}")
async def change_user(
    request: Request, session: SessionDep, admin: Admin, user_id: int,
    role: Annotated[Role, Form()], active: Annotated[bool, Form()] = False,
    inbox: Annotated[list[int] | None, Form(max_length=200)] = None,
) -> Response:
    """Change role, active flag and inboxes of an account."""
    target = await session.get(User, user_id)
    if target is None:
        raise NotFound("user not found")
    if target.id == admin.id and (role != Role.admin or not active):
        raise BadInput("you cannot demote or deactivate yourself")
    before = {"role": str(target.role), "active": target.is_active}
    target.role, target.is_active = role, active
    await routing.set_memberships(session, user_id=user_id, inbox_ids=set(inbox or []))
    audit.record(session, action="user.update", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user_id, ip=_ip(request), before=before,
                 role=str(role), active=active, inboxes=sorted(inbox or []))
    await session.commit()
    async with fresh_reader(request) as reader:
        context = {**await _users_context(reader), "notice": "Saved"}
    return templating.render(request, "admin/users.html", context, user=admin, block="users")


@router.post("/admin/users/{user_id}/unlock")
async def unlock_user(request: Request, session: SessionDep, admin: Admin, user_id: int) -> Response:
    """Lift a lockout."""
    target = await session.get(User, user_id)
    if target is None:
        raise NotFound("user not found")
    service.unlock(target)
    audit.record(session, action="user.unlock", actor_id=admin.id, actor_email=admin.email,
                 target_type="user", target_id=user_id, ip=_ip(request))
    await session.commit()
    async with fresh_reader(request) as reader:
        context = {**await _users_context(reader), "notice": "Unlocked"}
    return templating.render(request, "admin/users.html", context, user=admin, block="users")
