"""Who is calling: bearer token or session cookie, and role checks."""

from typing import Annotated

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from helpdesk.auth import service
from helpdesk.auth.models import Role, User
from helpdesk.auth.service import SignedToken
from helpdesk.config import Settings, SettingsDep
from helpdesk.db import ReadSessionDep
from helpdesk.errors import Forbidden, Unauthorized

SESSION_COOKIE = "helpdesk_session"
_bearer = HTTPBearer(auto_error=False)


def signed_token(settings: Settings, bearer: str | None, cookie: str | None) -> SignedToken | None:
    """What a bearer token (preferred) or session cookie names, if its signature and age are good.

    Whether the session it names is still live is for ``service.signed_in`` to say.
    """
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
    """The signed-in, active user of a live session; 401 otherwise.

    The session's id is left in ``request.state.auth_session_id`` (for signing out of it).
    """
    token = signed_token(settings, credentials.credentials if credentials else None,
                         request.cookies.get(SESSION_COOKIE))
    found = await service.signed_in(session, token) if token is not None else None
    if found is None:
        raise Unauthorized("not signed in")
    user, request.state.auth_session_id = found
    return user


CurrentUser = Annotated[User, Depends(current_user)]
# A row id in a path: past a 32-bit integer it names nothing (and PostgreSQL would refuse it).
RowId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def require_role(*roles: Role):  # type: ignore[no-untyped-def]
    """A dependency that lets only ``roles`` through."""

    async def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise Forbidden("your role may not do this")
        return user

    return check


Supervisor = Annotated[User, Depends(require_role(Role.supervisor, Role.admin))]
Admin = Annotated[User, Depends(require_role(Role.admin))]


def client_ip(request: Request) -> str | None:
    """The client's address (behind a proxy: as the server's trusted forwarded headers say)."""
    return request.client.host if request.client else None


def login_attempt(request: Request, email: str) -> service.Attempt:
    """A sign-in attempt by ``email`` from this request's address, under the configured policy."""
    state = request.app.state
    return service.Attempt(email=email, ip=client_ip(request), counters=state.login_counters,
                           policy=service.LoginPolicy.of(state.settings))
