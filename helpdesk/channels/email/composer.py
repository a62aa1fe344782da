"""The email fields of the ticket page's composer: Cc, Bcc, files and the signature."""

from collections.abc import Sequence
from typing import Any

from fastapi import UploadFile
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.channels.email import outgoing
from helpdesk.config import Settings
from helpdesk.errors import BadInput
from helpdesk.inboxes.models import Inbox
from helpdesk.replies import signatures
from helpdesk.tickets.models import Channel, Direction, Message, Ticket


async def context(session: AsyncSession, ticket: Ticket, user: User, inbox: Inbox | None,
                  settings: Settings) -> dict[str, Any]:
    """What the composer shows for an email ticket: the signature to be added, the Cc of the
    latest mail for "reply all", and the limits on files."""
    if ticket.channel != Channel.email:
        return {}
    last_cc = await session.scalar(
        select(col(Message.email_cc))
        .where(col(Message.ticket_id) == ticket.id, col(Message.direction) == Direction.inbound)
        .order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(1))
    return {
        "signature_preview": await signatures.for_reply(session, user, inbox),
        "reply_all_cc": list(last_cc or []),
        "attachment_limits": {"files": settings.reply_attachments_max_files,
                              "mb": settings.reply_attachments_max_bytes / (1024 * 1024)},
    }


async def reply_extras(*, cc: str, bcc: str, files: Sequence[UploadFile], settings: Settings,
                       by_email: bool) -> outgoing.ReplyExtras:
    """The checked Cc, Bcc and files of a reply; 422 when they are given for a note or another
    channel, where nothing could carry them."""
    chosen = [f for f in files if f.filename]
    if not by_email:
        if cc.strip() or bcc.strip() or chosen:
            raise BadInput("Cc, Bcc and attachments can be sent only with an email reply")
        return outgoing.ReplyExtras()
    return outgoing.ReplyExtras(cc=outgoing.addresses(cc, label="Cc"),
                                bcc=outgoing.addresses(bcc, label="Bcc"),
                                files=await outgoing.read_files(chosen, settings))


def kept_on_conflict(cc: str, bcc: str, extras: outgoing.ReplyExtras) -> dict[str, Any]:
    """What the composer shows again when the reply was not sent: the addresses as typed, and
    whether files must be chosen again (a browser cannot be handed them back)."""
    return {"draft_cc": cc, "draft_bcc": bcc, "files_dropped": bool(extras.files)}


async def signed(session: AsyncSession, body: str, *, user: User, ticket: Ticket) -> str:
    """``body`` with the operator's and the inbox's signatures after it."""
    inbox = await session.get(Inbox, ticket.inbox_id)
    return signatures.append(body, await signatures.for_reply(session, user, inbox))
