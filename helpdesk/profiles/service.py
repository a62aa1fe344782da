"""Assembling a customer's profile from customers, orders and tickets in a bounded query count.

This is the screen pop's hot path: every statement is built once at import (values are bound
parameters), rows come back as each statement's NamedTuple, and no ORM object is made per row.
The profile's calls are read by the calls package (``helpdesk.calls.recent``), which the caller
passes in as ``recent_calls``: calls use profiles for the screen pop, never the other way round.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple, Protocol, TypeVar, cast

from sqlalchemy import Select, bindparam, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.config import DEFAULT_REGION
from helpdesk.customers import rfm
from helpdesk.customers import service as customers
from helpdesk.customers.models import (
    CustomerIdentity,
    IdentityKind,
    OrderPublic,
    table_of,
)
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.profiles.models import Profile
from helpdesk.storage import prepared
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets.models import Tag, Ticket, TicketPublic, TicketTag

Row = TypeVar("Row", bound=tuple[Any, ...])
RECENT_ORDERS = 10
OPEN_TICKETS = 20
CUSTOMER, ORDER, ORDER_ITEM = customers.CUSTOMER, customers.ORDER, customers.ORDER_ITEM
IDENTITY = table_of(CustomerIdentity)
TICKET = table_of(Ticket)
TAG, TICKET_TAG = table_of(Tag), table_of(TicketTag)
class CustomerRow(NamedTuple):
    """The customer's columns a profile shows, with one of their identities (if any)."""

    id: int
    name: str | None
    name_kana: str | None
    tags: list[str]
    orders_count: int
    total_spent: Decimal
    first_order_at: datetime | None
    last_order_at: datetime | None
    recency_score: int | None
    frequency_score: int | None
    monetary_score: int | None
    identity_kind: IdentityKind | None
    identity_value: str | None


_COLUMNS = [CUSTOMER.c[name] for name in CustomerRow._fields[:-2]]


def _customer_where(condition: Any) -> prepared.Query[CustomerRow]:
    # The customer and all their identities in one round trip (one row per identity).
    return prepared.Query(
        select(*_COLUMNS, IDENTITY.c.kind, IDENTITY.c.value)
        .select_from(CUSTOMER.outerjoin(IDENTITY, IDENTITY.c.customer_id == CUSTOMER.c.id))
        .where(condition).order_by(IDENTITY.c.id), CustomerRow)


_BY_ID = _customer_where(CUSTOMER.c.id == bindparam("customer_id"))
_BY_PHONE = _customer_where(CUSTOMER.c.id == (
    select(IDENTITY.c.customer_id)
    .where(IDENTITY.c.kind == IdentityKind.phone.value, IDENTITY.c.value == bindparam("e164"))
    .scalar_subquery()))
_LATEST_ORDERS = (select(ORDER.c.id, ORDER.c.number, ORDER.c.ordered_at, ORDER.c.status, ORDER.c.total,
                         ORDER.c.currency)
                  .where(ORDER.c.customer_id == bindparam("customer_id"))
                  .order_by(ORDER.c.ordered_at.desc(), ORDER.c.id.desc()).limit(RECENT_ORDERS)
                  .subquery())


class _OrderLine(NamedTuple):
    # An order, once per item (its item columns None when it has none).
    id: int
    number: str
    ordered_at: datetime
    status: str
    total: Decimal
    currency: str
    sku: str | None
    item_name: str | None
    quantity: int | None
    unit_price: Decimal | None


_ORDERS = prepared.Query(
    select(_LATEST_ORDERS, ORDER_ITEM.c.sku, ORDER_ITEM.c.name.label("item_name"),
           ORDER_ITEM.c.quantity, ORDER_ITEM.c.unit_price)
    .select_from(_LATEST_ORDERS.outerjoin(ORDER_ITEM, ORDER_ITEM.c.order_id == _LATEST_ORDERS.c.id))
    .order_by(_LATEST_ORDERS.c.ordered_at.desc(), _LATEST_ORDERS.c.id.desc(), ORDER_ITEM.c.id),
    _OrderLine)


class _TicketRow(NamedTuple):
    # TicketPublic's fields but its tags, in its order (checked below), then the tag names.
    id: int
    number: int
    subject: str
    status: str
    pending_reason: str | None
    priority: str
    channel: str
    inbox_id: int
    customer_id: int | None
    assignee_id: int | None
    version: int
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    last_message_at: datetime | None
    first_response_due_at: datetime | None
    next_response_due_at: datetime | None
    resolution_due_at: datetime | None
    sla_breached: bool
    sla_due_at: datetime | None
    tag_names: str | None  # joined by _TAG_SEPARATOR


_TICKET_FIELDS = _TicketRow._fields[:-1]
if tuple(name for name in TicketPublic.model_fields if name != "tags") != _TICKET_FIELDS:
    raise RuntimeError("_TicketRow no longer follows TicketPublic's fields")
# The inboxes whose work a viewer sees, as a subquery (no separate round trip).
_VIEWER_INBOXES = (select(inbox_service.MEMBER.c.inbox_id)
                   .where(inbox_service.MEMBER.c.user_id == bindparam("viewer_id")))


def scoped(stmt: Select[Any], inbox_id: Any, row: type[Row]) -> dict[str, prepared.Query[Row]]:
    """``stmt`` for everyone, for a set of inboxes, and for a viewer's inboxes.

    ``inbox_id + 0``: the inbox is only a filter here. Without it SQLite, lacking statistics,
    picks an index led by the inbox and walks, say, every open ticket of the inbox (16 ms at 37k)
    instead of the customer's few.
    """
    inbox = inbox_id + literal_column("0")
    return {"all": prepared.Query(stmt, row),
            "inboxes": prepared.Query(stmt.where(inbox.in_(bindparam("inbox_ids", expanding=True))), row),
            "viewer": prepared.Query(stmt.where(inbox.in_(_VIEWER_INBOXES)), row)}


_TAG_SEPARATOR = "\x1f"
_TAG_NAMES = (select(func.aggregate_strings(TAG.c.name, _TAG_SEPARATOR))
              .select_from(TICKET_TAG.join(TAG, TAG.c.id == TICKET_TAG.c.tag_id))
              .where(TICKET_TAG.c.ticket_id == TICKET.c.id).correlate(TICKET)
              .scalar_subquery().label("tag_names"))
_OPEN_TICKETS = scoped(
    select(*[TICKET.c[name] for name in _TICKET_FIELDS], _TAG_NAMES)
    .where(TICKET.c.customer_id == bindparam("customer_id"),
           TICKET.c.status.in_([s.value for s in ticket_queries.OPEN_STATUSES]))
    .order_by(TICKET.c.updated_at.desc()).limit(OPEN_TICKETS), TICKET.c.inbox_id, _TicketRow)


@dataclass(frozen=True)
class ProfileScope:
    """Whose view of tickets and calls a profile shows: a viewer's, else a set of inboxes."""

    viewer: User | None
    inbox_ids: set[int] | None

    def scope(self) -> tuple[str, dict[str, Any]]:
        """Which variant of a scoped statement applies, and its parameters."""
        if self.viewer is not None:
            if self.viewer.sees_everything:
                return "all", {}
            return "viewer", {"viewer_id": self.viewer.id}
        if self.inbox_ids is None:
            return "all", {}
        return "inboxes", {"inbox_ids": sorted(self.inbox_ids)}


class RecentCalls(Protocol):
    """Reads a customer's latest calls that a scope may see, in the contract's Call shape.

    The calls package provides it (``helpdesk.calls.recent.recent_calls``); profiles import no calls.
    """

    async def __call__(self, session: AsyncSession, customer_id: int, scope: ProfileScope, /
                       ) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class CustomerRows:
    """A customer's row, once per identity: what a profile starts from."""

    rows: Sequence[CustomerRow]

    @property
    def id(self) -> int:
        """The customer's id."""
        return int(self.rows[0].id)


async def customer_rows(session: AsyncSession, customer_id: int) -> CustomerRows | None:
    """The customer with their identities (one indexed query), or None."""
    rows = await prepared.rows(session, _BY_ID, {"customer_id": customer_id})
    return CustomerRows(rows) if rows else None


async def customer_rows_by_phone(session: AsyncSession, e164: str) -> CustomerRows | None:
    """Whoever owns a normalised phone number, with their identities (one indexed query)."""
    rows = await prepared.rows(session, _BY_PHONE, {"e164": e164})
    return CustomerRows(rows) if rows else None


async def profile(
    session: AsyncSession, customer_id: int, *, recent_calls: RecentCalls,
    viewer: User | None = None, inbox_ids: set[int] | None = None, dormant_after_days: int = 180,
) -> Profile | None:
    """The whole profile, or None when there is no such customer: a fixed handful of queries.

    Open tickets and calls are those ``viewer`` may see or, without a viewer, those in
    ``inbox_ids`` (None: all).
    """
    found = await customer_rows(session, customer_id)
    if found is None:
        return None
    return await complete(session, found, ProfileScope(viewer, inbox_ids), dormant_after_days,
                          recent_calls=recent_calls)


async def profile_by_phone(
    session: AsyncSession, phone: str, *, viewer: User, recent_calls: RecentCalls,
    region: str = DEFAULT_REGION, dormant_after_days: int = 180,
) -> Profile | None:
    """The profile of whoever owns a phone number (any spelling), found by the identity index."""
    e164 = normalize.phone(phone, region)
    if e164 is None:
        return None
    found = await customer_rows_by_phone(session, e164)
    if found is None:
        return None
    return await complete(session, found, ProfileScope(viewer, None), dormant_after_days,
                          recent_calls=recent_calls)


async def complete(
    session: AsyncSession, found: CustomerRows, view: ProfileScope, dormant_after_days: int, *,
    recent_calls: RecentCalls,
) -> Profile:
    """The profile of a customer already read: orders, open tickets and ``recent_calls`` added."""
    customer = found.rows[0]
    customer_id, count, spent = customer.id, customer.orders_count, customer.total_spent
    first, last = customer.first_order_at, customer.last_order_at
    recency, frequency, monetary = customer.recency_score, customer.frequency_score, customer.monetary_score
    scope = view.scope()
    identities = [(r.identity_kind, r.identity_value) for r in found.rows
                  if r.identity_kind is not None and r.identity_value is not None]
    now = utcnow()
    # The three scores are computed together: all set, or none yet.
    scores = cast(tuple[int, int, int], (recency, frequency, monetary)) if recency is not None else None
    average = spent / count if count else Decimal(0)
    return Profile(
        id=customer_id, name=customer.name, name_kana=customer.name_kana,
        emails=[v for k, v in identities if k == IdentityKind.email],
        phones=[v for k, v in identities if k == IdentityKind.phone],
        line_ids=[v for k, v in identities if k == IdentityKind.line], tags=customer.tags,
        rank=rfm.rank_label(scores, orders_count=count, last_order_at=last, now=now,
                            dormant_after_days=dormant_after_days),
        recency_score=recency, frequency_score=frequency,
        monetary_score=monetary, ltv=spent, orders_count=count, total_spent=spent,
        average_order_value=average.quantize(Decimal("1.00")),
        first_order_at=first, last_order_at=last,
        dormant=rfm.is_dormant(last, now=now, dormant_after_days=dormant_after_days),
        # The session itself, not ``session.connection()``: that hops through a greenlet on
        # every call, while ``prepared`` remembers the transaction's connection.
        orders=await _recent_orders(session, customer_id),  # type: ignore[arg-type]
        open_tickets=await _open_tickets(session, customer_id, scope),
        recent_calls=await recent_calls(session, customer_id, view),
    )


async def recent_orders(session: AsyncSession, customer_id: int) -> list[OrderPublic]:
    """The latest orders with their items, in one query."""
    orders = await _recent_orders(session, customer_id)
    return [OrderPublic.model_validate(order) for order in orders]


async def _recent_orders(on: AsyncSession, customer_id: int) -> list[dict[str, Any]]:
    # Plain dicts: the Profile validates them in one pass (a model per row costs more).
    orders: dict[int, dict[str, Any]] = {}
    for row in await prepared.rows(on, _ORDERS, {"customer_id": customer_id}):
        order = orders.get(row.id)
        if order is None:
            order = orders[row.id] = {"number": row.number, "ordered_at": row.ordered_at,
                                      "status": row.status, "total": row.total,
                                      "currency": row.currency, "items": []}
        if row.sku is not None:
            order["items"].append({"sku": row.sku, "name": row.item_name, "quantity": row.quantity,
                                   "unit_price": row.unit_price})
    return list(orders.values())


async def _open_tickets(
    on: AsyncSession, customer_id: int, scope: tuple[str, dict[str, Any]]
) -> list[TicketPublic]:
    variant, params = scope
    rows = await prepared.rows(on, _OPEN_TICKETS[variant], {"customer_id": customer_id, **params})
    # Tags come with each ticket (a correlated subquery) rather than in a statement of their own.
    return [TicketPublic.model_validate({**row._asdict(), "tags": _tags(row.tag_names)})
            for row in rows]


def _tags(joined: str | None) -> list[str]:
    return sorted(joined.split(_TAG_SEPARATOR)) if joined else []

