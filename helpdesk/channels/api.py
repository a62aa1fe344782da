"""The API channel: other systems post messages in with a bearer token and an idempotency key."""

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Response
from pydantic import BaseModel, ConfigDict, Field

from helpdesk.config import SettingsDep
from helpdesk.db import SessionDep
from helpdesk.errors import NotFound, Unauthorized
from helpdesk.outbox.service import OutboundContext
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundMessage, IngestResult, Sender

router = APIRouter(tags=["channels"])


class ApiSender(BaseModel):
    name: str | None = Field(default=None, max_length=200)
    email: str | None = Field(default=None, max_length=254)
    phone: str | None = Field(default=None, max_length=40)


class ApiInbound(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    channel: Literal["api"] = "api"
    external_id: str | None = Field(default=None, max_length=255)
    sender: ApiSender = Field(alias="from")
    subject: str | None = Field(default=None, max_length=300)
    body: str = Field(min_length=1, max_length=1_000_000)
    inbox: str = Field(default="default", max_length=80)


async def inbound_token_required(
    settings: SettingsDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """401 unless the caller presents ``INBOUND_TOKEN``; 404 when none is configured."""
    expected = settings.inbound_token
    if not expected:
        raise NotFound("the API channel is not configured")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise Unauthorized("a valid inbound token is required")


@router.post("/api/inbound", status_code=201, response_model=IngestResult,
             dependencies=[Depends(inbound_token_required)],
             responses={200: {"description": "a duplicate of an earlier delivery"}})
async def inbound(
    body: ApiInbound,
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    idempotency_key: Annotated[str, Header(min_length=1, max_length=255)],
) -> IngestResult:
    """Create or continue a ticket from another system's message."""
    message = InboundMessage(
        channel=Channel.api, external_id=idempotency_key,
        sender=Sender(name=body.sender.name, email=body.sender.email, phone=body.sender.phone),
        subject=body.subject, body_text=body.body, inbox=body.inbox,
        conversation_key=body.external_id,
    )
    result = await ticket_ingest.ingest(session, message, options=ticket_ingest.IngestOptions(
        region=settings.default_region))
    await session.commit()
    if result.duplicate:
        response.status_code = 200
    return result


async def publish_reply(context: OutboundContext) -> None:
    """The ``reply.api`` sender: the posting system reads replies from ``GET /api/tickets/{id}``.

    Nothing is pushed anywhere; the reply counts as sent once it is there to be read.
    """
    return None
