"""What an import keeps between its batches: known owners, and orders still to count."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from helpdesk import normalize
from helpdesk.customers import bulk
from helpdesk.customers import merging as customer_merging
from helpdesk.customers import orders as customer_orders
from helpdesk.customers import service as customers
from helpdesk.customers import tasks as customer_tasks
from helpdesk.customers.models import (
    Customer,
    CustomerIdentity,
    IncomingCustomer,
    IncomingOrder,
    Order,
    OrderLine,
    PurchaseRecount,
)
from helpdesk.db import utcnow
from helpdesk.imports import tasks
from helpdesk.imports.layouts import Kind
from helpdesk.imports.service import BATCH
from helpdesk.realtime.log import event_sessions
from helpdesk.search.models import SearchEntry
from helpdesk.storage.counters import read_counter


def _order(number: str, email: str, total: int = 1000) -> IncomingOrder:
    return IncomingOrder(source="csv", number=number, ordered_at=datetime(2024, 5, 1, tzinfo=UTC),
                         total=Decimal(total), items=[OrderLine("T1", "煎茶", 1, Decimal(total))],
                         email=email)


async def _customer_of(session: AsyncSession, email: str) -> int:
    customer_id = await session.scalar(select(CustomerIdentity.customer_id).where(
        CustomerIdentity.kind == "email", CustomerIdentity.value == email))
    assert customer_id is not None
    return int(customer_id)


async def _counts(session: AsyncSession) -> dict[int, tuple[int, Decimal]]:
    rows = await session.execute(select(Customer.id, Customer.orders_count, Customer.total_spent))
    return {customer_id: (count, Decimal(spent)) for customer_id, count, spent in rows.all()}


async def _recounted(session: AsyncSession) -> dict[int, tuple[int, Decimal]]:
    """Each customer's count and total straight from the orders (all are purchases here)."""
    rows = await session.execute(select(Order.customer_id, func.count(), func.sum(Order.total))
                                 .group_by(Order.customer_id))
    found = {customer_id: (0, Decimal(0)) for customer_id in (await _counts(session))}
    found.update({customer_id: (n, Decimal(total)) for customer_id, n, total in rows.all()})
    return found


async def test_a_merge_between_batches_sends_later_orders_to_the_survivor(engine: AsyncEngine) -> None:
    """Owners remembered from one batch are forgotten once a merge moves identities."""
    maker = event_sessions(engine)
    known = bulk.KnownOwners()
    async with maker() as session:
        await bulk.import_customers(session, [IncomingCustomer(email="a@example.jp", name="A"),
                                              IncomingCustomer(email="b@example.jp", name="B")],
                                    region="JP", known=known)
        await bulk.import_orders(session, [_order("#1", "b@example.jp")], region="JP", known=known)
        await session.commit()
        survivor = await _customer_of(session, "a@example.jp")
        other = await _customer_of(session, "b@example.jp")
        version = await read_counter(session, "identity_version")
    async with maker() as session:
        await customer_merging.merge(session, survivor, other)
        await session.commit()
    async with maker() as session:
        assert await read_counter(session, "identity_version") != version
        result = await bulk.import_orders(session, [_order("#2", "b@example.jp")], region="JP",
                                          known=known)
        await session.commit()
        assert result.created == 1
        owners = set(await session.scalars(select(Order.customer_id)))
    assert owners == {survivor}


async def test_an_identity_deleted_with_its_customer_changes_the_version(engine: AsyncEngine) -> None:
    maker = event_sessions(engine)
    async with maker() as session:
        await bulk.import_customers(session, [IncomingCustomer(email="c@example.jp")], region="JP")
        await session.commit()
        before = await read_counter(session, "identity_version")
        await session.execute(Customer.__table__.delete())  # type: ignore[attr-defined]
        await session.commit()
        assert await read_counter(session, "identity_version") != before


def _orders_csv(path: Path, count: int) -> Path:
    lines = ["Name,Email,Financial Status,Currency,Total,Created at,Lineitem quantity,"
             "Lineitem name,Lineitem price,Lineitem sku"]
    lines += [f"#{n},c{n % 7}@example.jp,paid,JPY,{100 + n},2024-01-01 10:00:00 +0900,1,茶,"
              f"{100 + n},T1" for n in range(count)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


async def _import(maker: async_sessionmaker[AsyncSession], path: Path, *, in_child: bool = False,
                  **kwargs: object) -> None:
    options = tasks.ImportOptions(parse_process_min_bytes=0 if in_child else 1 << 40)
    with path.open("rb") as stream:
        await tasks.import_file(maker, stream, kind=Kind.orders, options=options,
                                **kwargs)  # type: ignore[arg-type]


async def test_an_import_counts_its_orders_at_the_end_and_leaves_no_recount(
        engine: AsyncEngine, tmp_path: Path) -> None:
    maker = event_sessions(engine)
    await _import(maker, _orders_csv(tmp_path / "orders.csv", BATCH + 10))
    async with maker() as session:
        counts = await _counts(session)
        assert len(counts) == 7 and sum(n for n, _ in counts.values()) == BATCH + 10
        assert counts == await _recounted(session)
        assert await session.scalar(select(func.count()).select_from(PurchaseRecount)) == 0


@pytest.mark.parametrize("in_child", [False, True], ids=["parsed-here", "parsed-in-child"])
async def test_an_import_stopped_after_a_batch_still_counts_what_it_committed(
        engine: AsyncEngine, tmp_path: Path, in_child: bool) -> None:
    """The parser (a child process, ahead by a few batches) stops with it, and nothing hangs."""
    maker = event_sessions(engine)

    class Stopped(Exception):
        pass

    def stop_after_first_batch(position: int) -> None:
        raise Stopped  # the caller gives up at the first progress report

    with pytest.raises(Stopped):
        await _import(maker, _orders_csv(tmp_path / "orders.csv", 3 * BATCH + 10),
                      in_child=in_child, progress=stop_after_first_batch)
    async with maker() as session:
        committed = await session.scalar(select(func.count()).select_from(Order))
        assert committed is not None and 0 < committed < 3 * BATCH + 10
        counts = await _counts(session)
        assert sum(n for n, _ in counts.values()) == committed
        assert counts == await _recounted(session)
        assert await session.scalar(select(func.count()).select_from(PurchaseRecount)) == 0


async def test_orders_of_an_import_that_died_are_counted_by_the_rank_refresh(
        engine: AsyncEngine) -> None:
    """A recount left behind (the process was killed) is settled once it stops beating."""
    maker = event_sessions(engine)
    async with maker() as session:
        recount = await customer_orders.open_recount(session)
        await bulk.import_orders(session, [_order(f"#{n}", f"d{n % 3}@example.jp", 100 * n)
                                           for n in range(1, 10)], region="JP", count_new=False)
        await customer_orders.beat_recount(session, recount)
        await session.commit()
    async with maker() as session:
        assert all(n == 0 for n, _ in (await _counts(session)).values())
        assert await customer_orders.settle_abandoned_recounts(session) == 0  # still beating
        await session.rollback()
    async with maker() as session:
        await session.execute(PurchaseRecount.__table__.update().values(  # type: ignore[attr-defined]
            beat_at=utcnow() - customer_orders.RECOUNT_ABANDONED_AFTER - timedelta(seconds=1)))
        await session.commit()
    await customer_tasks.refresh_ranks(maker, dormant_after_days=180)
    async with maker() as session:
        counts = await _counts(session)
        assert sorted(n for n, _ in counts.values()) == [3, 3, 3]
        assert counts == await _recounted(session)
        assert await session.scalar(select(func.count()).select_from(PurchaseRecount)) == 0


async def test_new_customers_are_indexed_with_every_identity_the_batch_gave_them(
        engine: AsyncEngine) -> None:
    """Entries written from the batch in memory equal entries rebuilt from the stored rows."""
    maker = event_sessions(engine)
    rows = [IncomingCustomer(email="e@example.jp", name="山田 花子", name_kana="ヤマダ ハナコ"),
            IncomingCustomer(email="e@example.jp", phone="+819011112222", name="山田 花"),
            IncomingCustomer(phone="+819033334444", name="佐藤"),
            IncomingCustomer(phone="+819033334444", email="s@example.jp")]
    async with maker() as session:
        await bulk.import_customers(session, rows, region="JP")
        await session.commit()
        stored = dict((await session.execute(select(SearchEntry.ref_id, SearchEntry.text)
                                             .where(SearchEntry.kind == "customer"))).all())
        people = (await session.execute(select(Customer.id, Customer.name, Customer.name_kana))).all()
        identities = await customers.identities_by_customer(session, [p[0] for p in people])
    assert len(people) == 2
    rebuilt = {cid: normalize.nfkc(customers.search_text(name, kana, identities[cid], "JP"))
               for cid, name, kana in people}
    assert stored == rebuilt
    assert any("09011112222" in text and "e@example.jp" in text for text in stored.values())
