"""RFM scores, rank labels and dormancy on crafted data with answers worked out by hand."""

from datetime import datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.calls.recent import recent_calls
from helpdesk.customers import bulk, rfm
from helpdesk.customers import orders as customer_orders
from helpdesk.customers import service as customers
from helpdesk.customers.models import Customer, IdentityKind, IncomingOrder, RfmBoundary
from helpdesk.db import utcnow
from helpdesk.profiles import service as profiles
from helpdesk.storage.sessions import begin_write
from tests.support.staff import Staff

# Customer i has 10-i orders; spends TOTALS[i] thousand yen; last ordered DAYS[i] days ago.
TOTALS = [3, 1, 4, 10, 5, 9, 2, 6, 8, 7]
DAYS = [5, 15, 95, 25, 65, 35, 85, 45, 55, 75]
# (R, F, M, rank), derived by hand from the quintile cuts of the values above.
EXPECTED = [(5, 5, 2, "優良"), (5, 5, 1, "一般"), (1, 4, 2, "一般"), (4, 4, 5, "優良"),
            (2, 3, 3, "一般"), (4, 3, 5, "優良"), (1, 2, 1, "一般"), (3, 2, 3, "一般"),
            (3, 1, 4, "一般"), (2, 1, 4, "新規")]


def _orders(i: int, now: datetime) -> list[IncomingOrder]:
    count = 10 - i
    found = []
    for k in range(count):
        amount = Decimal(TOTALS[i] * 1000 - (count - 1)) if k == 0 else Decimal(1)
        found.append(IncomingOrder(
            source="csv", number=f"R{i}-{k}", ordered_at=now - timedelta(days=DAYS[i] + k),
            total=amount, email=f"c{i}@example.jp"))
    return found


async def _crafted(db: AsyncSession) -> list[int]:
    await begin_write(db)
    now = utcnow()
    result = await bulk.import_orders(db, [o for i in range(10) for o in _orders(i, now)], region="JP")
    await customer_orders.refresh_aggregates(db, result.touched)
    await rfm.refresh(db, dormant_after_days=180)
    await db.commit()
    return [await _owner(db, f"c{i}@example.jp") for i in range(10)]


async def _owner(db: AsyncSession, email: str) -> int:
    found = await customers.owners(db, [(IdentityKind.email, email)])
    return found[(IdentityKind.email, email)]


def test_cuts_and_scores_by_quintile() -> None:
    assert rfm.cuts_of([1, 2, 3, 4, 5]) == [1, 2, 3, 4]
    assert [rfm.score(v, [1, 2, 3, 4]) for v in (1, 2, 3, 4, 5)] == [1, 2, 3, 4, 5]
    assert rfm.cuts_of(list(range(1, 11))) == [2, 4, 6, 8]
    assert rfm.cuts_of([]) == []
    # Ties: most customers ordered once, so one order scores lowest and two orders score 4.
    assert rfm.cuts_of([1] * 6 + [2, 2, 3, 9]) == [1, 1, 1, 2]
    assert [rfm.score(v, [1, 1, 1, 2]) for v in (1, 2, 3)] == [1, 4, 5]


def test_rank_labels() -> None:
    now = utcnow()
    recent, old = now - timedelta(days=10), now - timedelta(days=181)
    label = rfm.rank_label
    assert label(None, orders_count=0, last_order_at=None, now=now, dormant_after_days=180) is None
    assert label((5, 5, 5), orders_count=9, last_order_at=old, now=now, dormant_after_days=180) == "休眠"
    assert label((5, 5, 5), orders_count=9, last_order_at=old, now=now, dormant_after_days=365) == "優良"
    assert label((5, 1, 5), orders_count=1, last_order_at=recent, now=now, dormant_after_days=180) == "新規"
    assert label((4, 4, 4), orders_count=3, last_order_at=recent, now=now, dormant_after_days=180) == "優良"
    assert label((4, 4, 3), orders_count=3, last_order_at=recent, now=now, dormant_after_days=180) == "一般"


async def test_scores_and_ranks_over_all_customers(db: AsyncSession) -> None:
    ids = await _crafted(db)
    rows = {c.id: c for c in await db.scalars(select(Customer))}
    got = [(rows[i].recency_score, rows[i].frequency_score, rows[i].monetary_score, rows[i].rank)
           for i in ids]
    assert got == EXPECTED
    assert [rows[i].orders_count for i in ids] == [10 - i for i in range(10)]
    assert [rows[i].total_spent for i in ids] == [Decimal(t * 1000) for t in TOTALS]


async def test_a_new_order_rescores_one_customer_against_the_stored_cuts(db: AsyncSession) -> None:
    ids = await _crafted(db)
    before = {b.metric: (b.cuts, b.computed_at) for b in await db.scalars(select(RfmBoundary))}
    await begin_write(db)
    outcome = await customer_orders.record_order(db, IncomingOrder(
        source="shopify", number="#NEW", external_id="1", ordered_at=utcnow(), total=Decimal(1000),
        email="c9@example.jp"))
    await db.commit()
    assert outcome.customer_id == ids[9]
    db.expire_all()
    customer = await db.get(Customer, ids[9])
    assert customer is not None
    # 2 orders (not above the cut at 2: F1), 8000 yen (M4), ordered just now (R5): 一般, no longer 新規.
    assert (customer.recency_score, customer.frequency_score, customer.monetary_score,
            customer.rank) == (5, 1, 4, "一般")
    after = {b.metric: (b.cuts, b.computed_at) for b in await db.scalars(select(RfmBoundary))}
    assert after == before  # nobody else was rescanned


async def test_dormant_after_the_configured_days(db: AsyncSession, staff: Staff,
                                                 http: httpx.AsyncClient) -> None:
    boss = await staff.create("boss", Role.supervisor)
    headers = Staff.headers(boss)
    now = utcnow()
    await begin_write(db)
    for email, days in (("sleepy@example.jp", 181), ("awake@example.jp", 179)):
        await customer_orders.record_order(db, IncomingOrder(
            source="csv", number=email, ordered_at=now - timedelta(days=days), total=Decimal(500),
            email=email))
        await customer_orders.record_order(db, IncomingOrder(
            source="csv", number=email + "-2", ordered_at=now - timedelta(days=days + 30),
            total=Decimal(500), email=email))
    await db.commit()
    sleepy, awake = [await _owner(db, e) for e in ("sleepy@example.jp", "awake@example.jp")]
    await db.rollback()
    over_http = (await http.get(f"/api/customers/{sleepy}", headers=headers)).json()
    await db.refresh(boss)
    assert (over_http["dormant"], over_http["rank"]) == (True, "休眠")
    profile = await profiles.profile(db, awake, viewer=boss, dormant_after_days=180,
                                     recent_calls=recent_calls)
    assert profile is not None and profile.dormant is False and profile.rank != "休眠"
    longer = await profiles.profile(db, sleepy, viewer=boss, dormant_after_days=365,
                                    recent_calls=recent_calls)
    assert longer is not None and longer.dormant is False and longer.rank != "休眠"
    await db.rollback()
