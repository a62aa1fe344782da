"""Customers and the identities (email, phone, LINE id…) that tie channels to them."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import cast

from sqlalchemy import JSON, Column, Index, Numeric, Table, UniqueConstraint, true
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import EnumString, UTCDateTime


class IdentityKind(StrEnum):
    email = "email"
    phone = "phone"
    line = "line"
    meta = "meta"
    chat = "chat"
    api = "api"


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = Field(default=None, max_length=200)
    name_kana: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None)
    # Blocked as spam: what they send is still stored, on tickets filed as 対応不要.
    blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Purchase aggregates, kept current as orders arrive so a screen pop reads one row.
    orders_count: int = Field(default=0)
    total_spent: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2))
    first_order_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_order_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rank: str | None = Field(default=None, max_length=20)
    recency_score: int | None = Field(default=None)
    frequency_score: int | None = Field(default=None)
    monetary_score: int | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustomerIdentity(SQLModel, table=True):
    __tablename__ = "customer_identity"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", index=True, ondelete="CASCADE")
    kind: IdentityKind = Field(sa_type=EnumString(IdentityKind, 10))
    value: str = Field(max_length=254)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CustomerSummary(SQLModel):
    id: int
    name: str | None
    name_kana: str | None
    emails: list[str]
    phones: list[str]
    line_ids: list[str]
    rank: str | None
    orders_count: int
    total_spent: Decimal
    last_order_at: datetime | None


class PurchaseRecount(SQLModel, table=True):
    """Orders an import has added without counting them into their customers' totals yet.

    An import counts its new orders once, at its end, rather than batch by batch (each batch
    would rewrite thousands of customer rows). Meanwhile this row names the orders still to
    count (ids above ``after_order_id``); ``beat_at`` moves with every batch, so a row left
    still belongs to an import that died, and whoever finds it counts for it.
    """

    __tablename__ = "purchase_recount"

    id: int | None = Field(default=None, primary_key=True)
    after_order_id: int
    beat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Order(SQLModel, table=True):
    """A purchase imported from an EC platform; (source, number) identifies it for upserts."""

    __tablename__ = "order"
    __table_args__ = (
        UniqueConstraint("source", "number"),
        Index("ix_order_customer_ordered", "customer_id", "ordered_at"),
        # Operators search customers by order number (with or without its "#").
        Index("ix_order_number", "number"),
        # The platform's own id (Shopify order id) makes webhook upserts idempotent.
        Index("uq_order_source_external_id", "source", "external_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id", ondelete="CASCADE")
    source: str = Field(default="csv", max_length=20)
    number: str = Field(max_length=64)
    external_id: str | None = Field(default=None, max_length=64)
    ordered_at: datetime = Field(sa_type=UTCDateTime)
    status: str = Field(default="", max_length=40)
    total: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2))
    currency: str = Field(default="JPY", max_length=3)
    # False for a cancelled, returned or refunded order (its status read by
    # customers.orders.is_purchase): left out of counts, totals and ranks.
    is_purchase: bool = Field(default=True, sa_column_kwargs={"server_default": true()})
    # What the order charged or took off besides its items (送料; 手数料, 代引手数料; ポイント,
    # クーポン, 値引), never listed as items.
    shipping: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2),
                              sa_column_kwargs={"server_default": "0"})
    fees: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2),
                          sa_column_kwargs={"server_default": "0"})
    discount: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2),
                              sa_column_kwargs={"server_default": "0"})
    # A hash of the order's content and items: an import of an unchanged order writes nothing.
    digest: str | None = Field(default=None, max_length=32)
    # When the platform last changed the order; an older webhook delivery never overwrites a newer one.
    remote_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OrderItem(SQLModel, table=True):
    __tablename__ = "order_item"

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="order.id", index=True, ondelete="CASCADE")
    sku: str = Field(default="", max_length=64)
    name: str = Field(default="", max_length=300)
    quantity: int = Field(default=1)
    unit_price: Decimal = Field(default=Decimal(0), sa_type=Numeric(14, 2))


class OrderItemPublic(SQLModel):
    sku: str
    name: str
    quantity: int
    unit_price: Decimal


class OrderPublic(SQLModel):
    number: str
    ordered_at: datetime
    status: str
    total: Decimal
    currency: str
    items: list[OrderItemPublic]


class CustomerPage(SQLModel):
    items: list[CustomerSummary]


class RfmBoundary(SQLModel, table=True):
    """The quintile cuts of one RFM metric over all customers with orders, refreshed in bulk.

    ``cuts`` holds four ascending values (20th…80th percentile); a value above k cuts scores k+1.
    Recency is measured by ``last_order_at`` (epoch seconds), so the cuts stay valid between
    refreshes and one customer's new order is scored without looking at anyone else.
    """

    __tablename__ = "rfm_boundary"

    metric: str = Field(primary_key=True, max_length=20)
    cuts: list[float] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    population: int = Field(default=0)
    computed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


@dataclass(slots=True)
class OrderLine:
    """One line of an incoming order."""

    sku: str = ""
    name: str = ""
    quantity: int = 1
    unit_price: Decimal = Decimal(0)


@dataclass(slots=True)
class IncomingOrder:
    """An order from an EC platform, parsed by an adapter or importer; contacts not yet normalised."""

    source: str
    number: str
    ordered_at: datetime
    external_id: str | None = None
    status: str = ""
    total: Decimal = Decimal(0)
    currency: str = "JPY"
    remote_updated_at: datetime | None = None
    items: list[OrderLine] = field(default_factory=list)
    shipping: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    discount: Decimal = Decimal(0)
    email: str | None = None
    phone: str | None = None
    name: str | None = None
    name_kana: str | None = None
    # The order's address country (ISO 3166 code): its phone is read as that country's number.
    region: str | None = None
    # The fingerprint of the above, when the parser already took it (see order_digest).
    digest: str | None = None


@dataclass(slots=True)
class IncomingCustomer:
    """A customer row from an import; email and phone already normalised."""

    email: str | None = None
    phone: str | None = None
    name: str | None = None
    name_kana: str | None = None
    tags: list[str] = field(default_factory=list)
    note: str | None = None


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for bulk statements that skip the ORM."""
    return cast(Table, model.__table__)  # type: ignore[attr-defined]


class MergeRequest(SQLModel):
    other_id: int


class MergeResult(SQLModel):
    id: int
    merged_id: int
    moved: dict[str, int]
