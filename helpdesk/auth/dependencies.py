"""Who is calling: bearer token or session cookie, and role checks."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from helpdesk.auth import service
from helpdesk.auth.models import Role, User
from helpdesk.config import Settings
from helpdesk.db import ReadSessionDep
from helpdesk.errors import Forbidden, Unauthorized

SESSION_COOKIE = "helpdesk_session"
_bearer = HTTPBearer(auto_error=False)


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with (async: a plain def would cost a thread hop per request)."""
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def user_id_from_credentials(settings: Settings, bearer: str | None, cookie: str | None) -> int | None:
    """The user a bearer token or session cookie names, if either is valid."""
    if bearer:
        return service.read_token(settings.secret_key, bearer, settings.token_ttl_seconds)
    if cookie:
        return service.read_token(settings.secret_key, cookie, settings.token_ttl_seconds,
                                  salt=service.SESSION_SALT)
    return None


async def current_user(
    request: Request,
    session: ReadSessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The signed-in, active user; 401 otherwise."""
    user_id = user_id_from_credentials(
        settings, credentials.credentials if credentials else None,
        request.cookies.get(SESSION_COOKIE),
    )
    user = await session.get(User, user_id) if user_id is not None else None
    if user is None or not user.is_active:
        raise Unauthorized("not signed in")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def require_role(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that lets only ``roles`` through."""

    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden("your role may not do this")
        return user

    return check


Supervisor = Annotated[User, Depends(require_role(Role.supervisor, Role.admin))]
Admin = Annotated[User, Depends(require_role(Role.admin))]
