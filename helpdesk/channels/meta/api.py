"""``/webhooks/meta``: Messenger, Instagram and WhatsApp Cloud webhooks (``X-Hub-Signature-256``)."""

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import PlainTextResponse

from helpdesk.channels import webhooks
from helpdesk.channels.meta import service
from helpdesk.config import SettingsDep
from helpdesk.db import SessionDep
from helpdesk.errors import Forbidden, NotFound

router = APIRouter(tags=["channels"])


@router.get("/webhooks/meta", response_class=PlainTextResponse)
async def verify_subscription(
    settings: SettingsDep,
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=40)] = None,
    token: Annotated[str | None, Query(alias="hub.verify_token", max_length=500)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=500)] = None,
) -> str:
    """Answer Meta's subscription check with the challenge when the verify token matches."""
    expected = settings.meta_verify_token
    if not expected:
        raise NotFound("Meta is not configured")
    if mode != "subscribe" or not token or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Forbidden("verification failed")
    return challenge or ""


async def verified_body(
    request: Request, settings: SettingsDep,
    x_hub_signature_256: Annotated[str | None, Header()] = None,
) -> bytes:
    """The raw body, once its signature proves it came from Meta; 404 while Meta is unset."""
    if not settings.meta_app_secret:
        raise NotFound("Meta is not configured")
    body = await request.body()
    if not webhooks.valid_hex_signature(settings.meta_app_secret, body, x_hub_signature_256,
                                        "sha256="):
        raise Forbidden("invalid Meta signature")
    return body


@router.post("/webhooks/meta")
async def meta_webhook(
    body: Annotated[bytes, Depends(verified_body)], session: SessionDep, settings: SettingsDep,
    http: webhooks.HttpDep,
) -> dict[str, Any]:
    """Ingest the messages of a delivery; Meta delivers at least once, message ids dedupe."""
    payload = webhooks.json_object(body)
    received = await service.ingest_payload(session, payload, settings=settings, http=http)
    return {"received": received}
