"""``POST /webhooks/line``: LINE Messaging API webhooks, verified by ``X-Line-Signature``."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request

from helpdesk.channels import webhooks
from helpdesk.channels.line import service
from helpdesk.config import SettingsDep
from helpdesk.db import SessionDep
from helpdesk.errors import BadInput, Forbidden, NotFound

router = APIRouter(tags=["channels"])


async def verified_body(
    request: Request, settings: SettingsDep,
    x_line_signature: Annotated[str | None, Header()] = None,
) -> bytes:
    """The raw body, once its signature proves it came from LINE; 404 while LINE is unset."""
    if not settings.line_channel_secret:
        raise NotFound("LINE is not configured")
    body = await request.body()
    if not webhooks.valid_base64_signature(settings.line_channel_secret, body, x_line_signature):
        raise Forbidden("invalid LINE signature")
    return body


@router.post("/webhooks/line")
async def line_webhook(
    body: Annotated[bytes, Depends(verified_body)], session: SessionDep, settings: SettingsDep,
    http: webhooks.HttpDep,
) -> dict[str, Any]:
    """Ingest message events, note follows and unfollows; redeliveries change nothing."""
    events = webhooks.json_object(body).get("events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise BadInput("events must be a list of objects")
    names: dict[str, str | None] = {}
    for event in events:
        user_id, _ = service.source_ids(event)
        if user_id and user_id not in names and event.get("type") in ("message", "follow"):
            names[user_id] = await service.display_name(http, settings, user_id)
    for event in events:
        user_id, _ = service.source_ids(event)
        await service.handle_event(session, event, name=names.get(user_id or ""), settings=settings)
        await session.commit()  # one event at a time: a later bad one cannot undo an earlier
    return {}
