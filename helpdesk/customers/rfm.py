"""RFM scores (recency, frequency, monetary; 1–5 by quintiles over all customers) and rank labels.

The quintile cuts are stored (``rfm_boundary``) and refreshed in bulk after imports and
periodically; between refreshes a customer whose orders change is scored against the stored
cuts alone, so a webhook never rescans every customer.
"""

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, case, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.customers.models import Customer, RfmBoundary, table_of
from helpdesk.db import utcnow

METRICS = ("recency", "frequency", "monetary")
EXCELLENT = "優良"
REGULAR = "一般"
NEW = "新規"
DORMANT = "休眠"
# R+F+M at or above this (out of 15) is an excellent customer.
EXCELLENT_SCORE = 12

Cuts = dict[str, list[float]]
CUSTOMER = table_of(Customer)


def cuts_of(ascending: Sequence[float]) -> list[float]:
    """The 20th, 40th, 60th and 80th percentile values of an ascending list (empty → no cuts)."""
    n = len(ascending)
    if n == 0:
        return []
    return [float(ascending[math.ceil(n * i / 5) - 1]) for i in range(1, 5)]


def score(value: float, cuts: Sequence[float]) -> int:
    """1–5: one more than the number of cuts ``value`` lies above."""
    return 1 + sum(1 for cut in cuts if value > cut)


def metric_values(
    orders_count: int, total_spent: Decimal | float, last_order_at: datetime | None
) -> dict[str, float]:
    """The three measured values; higher is better for each (recency by the last order's time)."""
    last = last_order_at.timestamp() if last_order_at is not None else 0.0
    return {"recency": last, "frequency": float(orders_count), "monetary": float(total_spent)}


def rank_label(
    scores: tuple[int, int, int] | None,
    *,
    orders_count: int,
    last_order_at: datetime | None,
    now: datetime,
    dormant_after_days: int,
) -> str | None:
    """休眠 past the dormancy window, 新規 after one order, 優良 for high RFM, else 一般."""
    if orders_count == 0 or last_order_at is None:
        return None
    if is_dormant(last_order_at, now=now, dormant_after_days=dormant_after_days):
        return DORMANT
    if orders_count == 1:
        return NEW
    if scores is not None and sum(scores) >= EXCELLENT_SCORE:
        return EXCELLENT
    return REGULAR


def is_dormant(last_order_at: datetime | None, *, now: datetime, dormant_after_days: int) -> bool:
    """True when the last order is older than the dormancy window."""
    return last_order_at is not None and now - last_order_at > timedelta(days=dormant_after_days)


async def boundaries(session: AsyncSession) -> Cuts:
    """The stored cuts by metric (empty when never computed)."""
    rows = await session.execute(select(col(RfmBoundary.metric), col(RfmBoundary.cuts)))
    return {metric: list(cuts) for metric, cuts in rows.all()}


async def refresh_boundaries(session: AsyncSession) -> Cuts:
    """Recompute the quintile cuts over every customer with orders and store them."""
    columns = {"recency": col(Customer.last_order_at), "frequency": col(Customer.orders_count),
               "monetary": col(Customer.total_spent)}
    found: Cuts = {}
    population = 0
    for metric, column in columns.items():
        values = list(await session.scalars(
            select(column).where(col(Customer.orders_count) > 0).order_by(column)))
        population = len(values)
        found[metric] = cuts_of([_as_number(v) for v in values])
    await session.execute(delete(RfmBoundary))
    now = utcnow()
    session.add_all(RfmBoundary(metric=m, cuts=c, population=population, computed_at=now)
                    for m, c in found.items())
    await session.flush()
    return found


def _as_number(value: Any) -> float:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return float(value)


async def rescore_all(session: AsyncSession, cuts: Cuts, *, dormant_after_days: int) -> None:
    """Score and label every customer in one statement against ``cuts``."""
    r, f, m = (_score_sql(metric, cuts.get(metric, [])) for metric in METRICS)
    has_orders = col(Customer.orders_count) > 0
    cutoff = utcnow() - timedelta(days=dormant_after_days)
    label = case(
        (~has_orders, None),
        (col(Customer.last_order_at) < cutoff, DORMANT),
        (col(Customer.orders_count) == 1, NEW),
        (r + f + m >= EXCELLENT_SCORE, EXCELLENT),
        else_=REGULAR,
    )
    await session.execute(update(CUSTOMER).values(
        recency_score=case((has_orders, r), else_=None),
        frequency_score=case((has_orders, f), else_=None),
        monetary_score=case((has_orders, m), else_=None),
        rank=label,
    ))


def _score_sql(metric: str, cuts: Sequence[float]) -> ColumnElement[int]:
    column: Any = {"recency": col(Customer.last_order_at), "frequency": col(Customer.orders_count),
                   "monetary": col(Customer.total_spent)}[metric]
    expr: ColumnElement[int] = literal(1, Integer)
    for cut in cuts:
        expr = expr + case((column > _sql_value(metric, cut), 1), else_=0)
    return expr


def _sql_value(metric: str, cut: float) -> object:
    if metric == "recency":
        return datetime.fromtimestamp(cut, UTC)
    return Decimal(repr(cut)) if metric == "monetary" else cut


async def refresh(session: AsyncSession, *, dormant_after_days: int) -> Cuts:
    """Recompute the cuts, then every customer's scores and rank (after imports, periodically)."""
    cuts = await refresh_boundaries(session)
    await rescore_all(session, cuts, dormant_after_days=dormant_after_days)
    return cuts


async def rescore(
    session: AsyncSession, customer_ids: Iterable[int], *, dormant_after_days: int
) -> None:
    """Score a few customers against the stored cuts (computing them first if there are none)."""
    wanted = sorted(set(customer_ids))
    if not wanted:
        return
    cuts = await boundaries(session) or await refresh_boundaries(session)
    rows = await session.execute(
        select(CUSTOMER.c.id, CUSTOMER.c.orders_count, CUSTOMER.c.total_spent,
               CUSTOMER.c.last_order_at).where(CUSTOMER.c.id.in_(wanted)))
    now = utcnow()
    params = [_scored(cid, count, spent, last, cuts, now, dormant_after_days)
              for cid, count, spent, last in rows.all()]
    if params:
        await session.execute(
            update(CUSTOMER).where(CUSTOMER.c.id == bindparam("b_id")).values(
                recency_score=bindparam("r"), frequency_score=bindparam("f"),
                monetary_score=bindparam("m"), rank=bindparam("rank")),
            params,
        )


def _scored(
    customer_id: int, count: int, spent: Decimal, last: datetime | None, cuts: Cuts,
    now: datetime, dormant_after_days: int,
) -> dict[str, object]:
    if count == 0:
        return {"b_id": customer_id, "r": None, "f": None, "m": None, "rank": None}
    values = metric_values(count, spent, last)
    r, f, m = (score(values[metric], cuts.get(metric, [])) for metric in METRICS)
    label = rank_label((r, f, m), orders_count=count, last_order_at=last, now=now,
                       dormant_after_days=dormant_after_days)
    return {"b_id": customer_id, "r": r, "f": f, "m": m, "rank": label}
