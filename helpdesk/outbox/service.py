"""Queueing what must be sent; the worker in tasks.py delivers it after commit."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.outbox.models import OutboxItem


def enqueue(
    session: AsyncSession, *, kind: str, message_id: int | None, payload: dict[str, Any]
) -> OutboxItem:
    """Add an outbox row to the current transaction."""
    item = OutboxItem(kind=kind, message_id=message_id, payload=payload)
    session.add(item)
    return item
