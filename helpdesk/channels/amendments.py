"""Edits and reactions as channels deliver them, applied to the message they name.

A change whose message is not here (sent before the channel was connected, or arriving ahead of
it) is kept as a message of its own, so nothing the customer did is lost; taking back a reaction
to such a message leaves nothing to keep. Each delivery is applied once (``delivery_receipt``).
"""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.receipts import service as receipts
from helpdesk.tickets import amend
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import InboundMessage


@dataclass(frozen=True)
class Amendment:
    """An edit (``body_text``) or a reaction (``emoji``, None when taken back) to a message."""

    provider: str
    delivery_id: str  # dedupes redeliveries
    target_id: str  # the provider's id of the message changed
    at: datetime
    fallback: InboundMessage  # kept as a message when the target is not here
    body_text: str | None = None
    emoji: str | None = None
    reaction: bool = False


async def apply(session: AsyncSession, change: Amendment, *, options: ticket_ingest.IngestOptions) -> bool:
    """Apply the change once; False for a redelivery (or a reaction taken back from nothing)."""
    if not await receipts.first_delivery(session, provider=change.provider,
                                         delivery_id=change.delivery_id):
        return False
    target = await amend.find(session, change.fallback.channel, change.target_id)
    if target is None:
        if change.reaction and not change.emoji:
            return False
        result = await ticket_ingest.ingest(session, change.fallback, options=options)
        return not result.duplicate
    if change.reaction:
        await amend.react(session, target, emoji=change.emoji, at=change.at)
    else:
        await amend.edit(session, target, body_text=change.body_text or "", at=change.at)
    return True
