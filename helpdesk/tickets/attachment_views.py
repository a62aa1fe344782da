"""Files on a ticket's messages, as the thread links them: downloads and photo previews, each
checked to belong to a ticket the viewer may open."""

from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.db import ReadSessionDep
from helpdesk.errors import HelpdeskError, NotFound
from helpdesk.tickets import photos
from helpdesk.tickets.dependencies import CurrentTicket
from helpdesk.tickets.models import Attachment, Message, Ticket

router = APIRouter(include_in_schema=False)


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}")
async def attachment(ticket: CurrentTicket, attachment_id: int, session: ReadSessionDep) -> Response:
    """An attachment as a download, never rendered inline (it came from a customer)."""
    row = await session.get(Attachment, attachment_id)
    if row is None or not await _belongs(session, row, ticket):
        raise NotFound("attachment not found")
    filename = row.filename.replace('"', "").replace("\r", "").replace("\n", "")
    return Response(row.data, media_type="application/octet-stream", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}"})


@router.get("/tickets/{ticket_id}/attachments/{attachment_id}/preview")
async def attachment_preview(ticket: CurrentTicket, attachment_id: int,
                             session: ReadSessionDep) -> Response:
    """A photo shown inline in the conversation: only JPEG, PNG, GIF or WebP whose bytes say so
    (a script or SVG labelled as a photo is refused), sandboxed should it be opened on its own."""
    row = await session.get(Attachment, attachment_id)
    if row is None or not await _belongs(session, row, ticket):
        raise NotFound("attachment not found")
    kind = photos.photo_type(row.data)
    if kind is None:
        raise HelpdeskError("this attachment is not a photo that can be shown", status_code=415)
    return Response(row.data, media_type=kind, headers={
        "Content-Disposition": "inline", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=86400"})


async def _belongs(session: AsyncSession, row: Attachment, ticket: Ticket) -> bool:
    owner = await session.scalar(select(col(Message.ticket_id)).where(col(Message.id) == row.message_id))
    return owner == ticket.id
