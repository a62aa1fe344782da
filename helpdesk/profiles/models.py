"""The customer profile an operator sees: identity, purchase history, open work, calls."""

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel import SQLModel

from helpdesk.customers.models import OrderPublic
from helpdesk.tickets.models import TicketPublic


class Profile(SQLModel):
    id: int
    name: str | None
    name_kana: str | None
    emails: list[str]
    phones: list[str]
    line_ids: list[str]
    tags: list[str]
    rank: str | None
    recency_score: int | None
    frequency_score: int | None
    monetary_score: int | None
    ltv: Decimal
    orders_count: int
    total_spent: Decimal
    average_order_value: Decimal
    first_order_at: datetime | None
    last_order_at: datetime | None
    dormant: bool
    orders: list[OrderPublic]
    open_tickets: list[TicketPublic]
    recent_calls: list[dict[str, Any]]
