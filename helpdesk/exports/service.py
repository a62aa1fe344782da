"""What each export holds, read in keyset batches of a short read transaction each.

A batch is ``WHERE id > last ORDER BY id LIMIT n`` on the primary key, so a million rows cost a
million rows once, memory holds one batch, and no read transaction stays open across the
whole export (on SQLite a long reader would keep the write-ahead log from being checkpointed).
"""

import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.audit.models import AuditLog
from helpdesk.calls.models import Call
from helpdesk.customers.models import Customer, CustomerIdentity
from helpdesk.tickets.models import Message, Ticket

BATCH = 2000
Rows = list[Sequence[Any]]
Enrich = Callable[[AsyncSession, Rows], Awaitable[Rows]]


@dataclass(frozen=True)
class Export:
    """One kind of export: its columns, its query (id first) and the time column ranges apply to."""

    name: str
    header: tuple[str, ...]
    columns: tuple[Any, ...]
    time_column: Any
    enrich: Enrich | None = None
    admin_only: bool = False

    def query(self, *, after: int, start: datetime | None, end: datetime | None,
              limit: int) -> Select[Any]:
        """The next batch after id ``after`` within [start, end)."""
        key = self.columns[0]
        stmt = select(*self.columns).where(key > after).order_by(key).limit(limit)
        if start is not None:
            stmt = stmt.where(self.time_column >= start)
        if end is not None:
            stmt = stmt.where(self.time_column < end)
        return stmt


async def _with_identities(session: AsyncSession, rows: Rows) -> Rows:
    """Customers' emails and phones, for a batch in one query."""
    ids = [row[0] for row in rows]
    found: dict[int, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for customer_id, kind, value in (await session.execute(
            select(col(CustomerIdentity.customer_id), col(CustomerIdentity.kind),
                   col(CustomerIdentity.value))
            .where(col(CustomerIdentity.customer_id).in_(ids))
            .order_by(col(CustomerIdentity.id)))).all():
        found[customer_id][str(kind)].append(value)
    return [(*row[:3], found[row[0]]["email"], found[row[0]]["phone"], *row[3:]) for row in rows]


EXPORTS: dict[str, Export] = {
    "tickets": Export(
        "tickets",
        ("id", "number", "subject", "status", "pending_reason", "priority", "channel", "inbox_id",
         "customer_id", "assignee_id", "created_at", "updated_at", "first_response_at",
         "last_message_at", "resolved_at"),
        (col(Ticket.id), col(Ticket.number), col(Ticket.subject), col(Ticket.status),
         col(Ticket.pending_reason), col(Ticket.priority), col(Ticket.channel), col(Ticket.inbox_id),
         col(Ticket.customer_id), col(Ticket.assignee_id), col(Ticket.created_at),
         col(Ticket.updated_at), col(Ticket.first_response_at), col(Ticket.last_message_at),
         col(Ticket.resolved_at)),
        col(Ticket.created_at)),
    "messages": Export(
        "messages",
        ("id", "ticket_id", "created_at", "direction", "internal", "channel", "author",
         "author_user_id", "delivery_status", "body_text"),
        (col(Message.id), col(Message.ticket_id), col(Message.created_at), col(Message.direction),
         col(Message.internal), col(Message.channel), col(Message.author),
         col(Message.author_user_id), col(Message.delivery_status), col(Message.body_text)),
        col(Message.created_at)),
    "calls": Export(
        "calls",
        ("id", "call_id", "provider", "direction", "from", "to", "state", "cause", "voicemail",
         "inbox_id", "customer_id", "operator_id", "ticket_id", "queue", "started_at",
         "answered_at", "ended_at"),
        (col(Call.id), col(Call.call_id), col(Call.provider), col(Call.direction),
         col(Call.from_number), col(Call.to_number), col(Call.state), col(Call.cause),
         col(Call.voicemail), col(Call.inbox_id), col(Call.customer_id), col(Call.operator_id),
         col(Call.ticket_id), col(Call.queue), col(Call.started_at), col(Call.answered_at),
         col(Call.ended_at)),
        col(Call.started_at)),
    "customers": Export(
        "customers",
        ("id", "name", "name_kana", "emails", "phones", "tags", "rank", "recency_score",
         "frequency_score", "monetary_score", "orders_count", "total_spent", "first_order_at",
         "last_order_at", "created_at"),
        (col(Customer.id), col(Customer.name), col(Customer.name_kana), col(Customer.tags),
         col(Customer.rank), col(Customer.recency_score), col(Customer.frequency_score),
         col(Customer.monetary_score), col(Customer.orders_count), col(Customer.total_spent),
         col(Customer.first_order_at), col(Customer.last_order_at), col(Customer.created_at)),
        col(Customer.created_at), enrich=_with_identities),
    "audit": Export(
        "audit",
        ("id", "at", "action", "actor_id", "actor_email", "target_type", "target_id", "ip",
         "detail"),
        (col(AuditLog.id), col(AuditLog.at), col(AuditLog.action), col(AuditLog.actor_id),
         col(AuditLog.actor_email), col(AuditLog.target_type), col(AuditLog.target_id),
         col(AuditLog.ip), col(AuditLog.detail)),
        col(AuditLog.at), admin_only=True),
}


async def batches(readers: async_sessionmaker[AsyncSession], export: Export, *,
                  start: datetime | None, end: datetime | None,
                  batch: int = BATCH) -> AsyncIterator[Rows]:
    """The export's rows, ``batch`` at a time, each batch read in its own short transaction."""
    after = 0
    while True:
        async with readers() as session:
            rows: Rows = [tuple(row) for row in (await session.execute(
                export.query(after=after, start=start, end=end, limit=batch))).all()]
            if rows and export.enrich is not None:
                rows = await export.enrich(session, rows)
        if not rows:
            return
        yield [_plain(row) for row in rows]
        if len(rows) < batch:
            return
        after = rows[-1][0]


def _plain(row: Sequence[Any]) -> Sequence[Any]:
    """JSON cells (tags, audit detail) as compact text."""
    return [_json_text(v) if isinstance(v, dict) else v for v in row]


def _json_text(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
