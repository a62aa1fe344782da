"""Signing in for the API."""

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError

from helpdesk.auth import service
from helpdesk.auth.dependencies import CurrentUser, SettingsDep
from helpdesk.auth.models import Credentials, Token, UserPublic
from helpdesk.db import SessionDep
from helpdesk.errors import BadInput, HelpdeskError

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


@router.post("/token", response_model=Token, responses={401: {}, 423: {}})
async def token(request: Request, session: SessionDep, settings: SettingsDep) -> Token:
    """Exchange email and password for a bearer token."""
    credentials = await _credentials(request)
    policy = service.LoginPolicy(settings.lockout_failures,
                                 timedelta(minutes=settings.lockout_minutes))
    ip = request.client.host if request.client else None
    try:
        user = await service.authenticate(session, email=credentials.email,
                                          password=credentials.password, ip=ip, policy=policy)
    except HelpdeskError:
        await session.commit()  # the failure count and audit row must survive the refusal
        raise
    await session.commit()
    return Token(access_token=service.issue_token(settings.secret_key, user))


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    """The signed-in user."""
    return UserPublic.model_validate(user.model_dump())
