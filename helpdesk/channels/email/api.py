"""``POST /webhooks/email``: a raw RFC 822 message from a mail provider or relay."""

from fastapi import APIRouter, Depends, Request, Response

from helpdesk.channels.api import inbound_token_required
from helpdesk.channels.email import service
from helpdesk.config import SettingsDep
from helpdesk.db import SessionDep
from helpdesk.errors import BadInput
from helpdesk.tickets.models import IngestResult

router = APIRouter(tags=["channels"])


@router.post(
    "/webhooks/email", status_code=201, response_model=IngestResult,
    dependencies=[Depends(inbound_token_required)],
    openapi_extra={"requestBody": {"content": {"message/rfc822": {"schema": {"type": "string"}}},
                                   "required": True}},
    responses={200: {"description": "a duplicate of a message already received"}},
)
async def inbound_email(request: Request, session: SessionDep, settings: SettingsDep,
                        response: Response) -> IngestResult:
    """Ingest one raw email (``Authorization: Bearer <INBOUND_TOKEN>``); its Message-ID dedupes."""
    raw = await request.body()
    if not raw.strip():
        raise BadInput("the body must be a raw RFC 822 message")
    result = await service.ingest_raw(session, raw, settings=settings)
    await session.commit()
    if result.duplicate:
        response.status_code = 200
    return result
