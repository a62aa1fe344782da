"""Customer and order import throughput, then profile-by-phone latency, at shop scale.

    .venv/bin/python bench/customers_import.py [--customers 100000] [--orders 1000000]
        [--lookups 5000] [--database-url sqlite+aiosqlite:///…] [--keep DIR]

Writes a Shift_JIS customers CSV (Japanese headers, full-width phones for some) and a UTF-8 BOM
orders CSV (Shopify layout, one row per line item), imports both through the same job the CLI
and upload use, imports the orders again (nothing changes), then looks profiles up by phone
numbers spelled in several ways. Prints rows/s, p50/p99 latency and peak memory.
"""

import argparse
import asyncio
import csv
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from helpdesk.auth import service as auth
from helpdesk.auth.models import Role
from helpdesk.calls.recent import recent_calls
from helpdesk.db import create_engine
from helpdesk.imports import tasks
from helpdesk.imports.layouts import Kind
from helpdesk.inboxes import service as inbox_service
from helpdesk.migrations import run_upgrade
from helpdesk.profiles import service as profiles
from helpdesk.realtime.log import event_sessions

FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["太郎", "花子", "翔太", "さくら", "大翔", "結衣", "蓮", "陽菜", "悠真", "美咲"]
KANA_F = ["サトウ", "スズキ", "タカハシ", "タナカ", "イトウ", "ワタナベ", "ヤマモト", "ナカムラ",
          "コバヤシ", "カトウ"]
KANA_G = ["タロウ", "ハナコ", "ショウタ", "サクラ", "ヒロト", "ユイ", "レン", "ヒナ", "ユウマ", "ミサキ"]
PRODUCTS = [("TEA-001", "有機煎茶 100g", 1200), ("TEA-014", "ほうじ茶ティーバッグ 30包", 980),
            ("CUP-203", "有田焼 湯呑み", 3500), ("SWT-011", "抹茶どら焼き 6個入", 1620),
            ("GFT-100", "ギフトセット 桐箱入り", 8800)]


def phone_of(i: int) -> str:
    return f"090{i // 10000:04d}{i % 10000:04d}"


def write_customers(path: Path, count: int) -> None:
    with path.open("w", encoding="cp932", newline="") as f:
        out = csv.writer(f)
        out.writerow(["顧客番号", "姓", "名", "セイ", "メイ", "メールアドレス", "電話番号"])
        for i in range(count):
            phone = phone_of(i)
            if i % 3 == 0:  # full-width, dashed, as typed into a Japanese form
                phone = f"{phone[:3]}－{phone[3:7]}－{phone[7:]}".translate(
                    str.maketrans("0123456789", "０１２３４５６７８９"))
            out.writerow([i, FAMILY[i % 10], GIVEN[i // 10 % 10], KANA_F[i % 10], KANA_G[i // 10 % 10],
                          f"customer{i}@example.jp", phone])


def write_orders(path: Path, customers: int, orders: int, rng: random.Random) -> int:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    rows = 0
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        out = csv.writer(f)
        out.writerow(["Name", "Email", "Financial Status", "Currency", "Total", "Created at",
                      "Lineitem quantity", "Lineitem name", "Lineitem price", "Lineitem sku",
                      "Billing Name", "Billing Phone", "Id"])
        for n in range(orders):
            i = rng.randrange(customers)
            lines = rng.sample(PRODUCTS, k=2 if n % 10 == 0 else 1)
            total = sum(p for _, _, p in lines)
            when = (start + timedelta(minutes=n)).strftime("%Y-%m-%d %H:%M:%S +0900")
            for k, (sku, name, price) in enumerate(lines):
                head = [f"customer{i}@example.jp", "paid", "JPY", total, when] if k == 0 else [""] * 5
                out.writerow([f"#{100000 + n}", *head, 1, name, price, sku,
                              "" if k else f"{FAMILY[i % 10]} {GIVEN[i // 10 % 10]}",
                              "" if k else phone_of(i), "" if k else 5_000_000 + n])
                rows += 1
    return rows


async def import_one(maker, path: Path, kind: Kind) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    stream = await asyncio.to_thread(path.open, "rb")
    try:
        # The CLI's options: a process that only imports pauses the collector per batch.
        options = tasks.ImportOptions(pause_collector=True)
        summary = await tasks.import_file(maker, stream, kind=kind, options=options)
    finally:
        stream.close()
    return time.perf_counter() - started, summary


async def lookups(maker, customers: int, count: int, rng: random.Random) -> list[float]:  # type: ignore[no-untyped-def]
    async with maker() as session:
        viewer = await auth.create_user(session, email="bench@example.com", name="bench",
                                        role=Role.operator, password="bench-password")
        assert viewer.id is not None
        await inbox_service.join_named(session, user_id=viewer.id, names=["default"])
        await session.commit()
    spellings = [lambda p: p, lambda p: f"{p[:3]}-{p[3:7]}-{p[7:]}", lambda p: "+81" + p[1:]]
    timings = []
    for n in range(count + 200):
        phone = rng.choice(spellings)(phone_of(rng.randrange(customers)))
        started = time.perf_counter()
        async with maker() as session:
            profile = await profiles.profile_by_phone(session, phone, viewer=viewer,
                                                      recent_calls=recent_calls)
        elapsed = time.perf_counter() - started
        assert profile is not None and profile.phones, phone
        if n >= 200:  # warm-up excluded
            timings.append(elapsed)
    return timings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--database-url")
    parser.add_argument("--keep", help="write the CSVs and database here and keep them")
    parser.add_argument("--floor", action="store_true",
                        help="also time bare sqlite3 inserts of the same rows (no application work)")
    args = parser.parse_args()
    rng = random.Random(42)
    work = Path(args.keep or tempfile.mkdtemp(prefix="helpdesk-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    url = args.database_url or f"sqlite+aiosqlite:///{work / 'bench.db'}"
    started = time.perf_counter()
    write_customers(work / "customers.csv", args.customers)
    order_rows = write_orders(work / "orders.csv", args.customers, args.orders, rng)
    print(f"generated {args.customers} customers, {args.orders} orders ({order_rows} rows) "
          f"in {time.perf_counter() - started:.1f}s -> {work}")
    run_upgrade(url)
    asyncio.run(measure(url, work, args.customers, order_rows, args.lookups, rng))
    own, child = (resource.getrusage(who).ru_maxrss / 1024
                  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"peak RSS {own:.0f} MiB (the child parsing the orders file: {child:.0f} MiB)")
    if args.floor:  # last: it holds every row in memory at once
        floor(work / "floor.db", args.customers, args.orders)


async def measure(url: str, work: Path, customers: int, order_rows: int, count: int,
                  rng: random.Random) -> None:
    engine = create_engine(url)
    maker = event_sessions(engine)
    for label, name, kind, rows in (("customers", "customers.csv", Kind.customers, customers),
                                    ("orders", "orders.csv", Kind.orders, order_rows),
                                    ("orders again", "orders.csv", Kind.orders, order_rows)):
        elapsed, summary = await import_one(maker, work / name, kind)
        print(f"import {label}: {rows} rows in {elapsed:.1f}s = {rows / elapsed:,.0f} rows/s "
              f"({summary})")
    timings = await lookups(maker, customers, count, rng)
    print(f"profile by phone ({count} lookups): p50 {pct(timings, 0.5):.2f} ms, "
          f"p99 {pct(timings, 0.99):.2f} ms, mean {statistics.mean(timings) * 1000:.2f} ms")
    await engine.dispose()


def floor(path: Path, customers: int, orders: int) -> None:
    """The same orders and items through sqlite3's executemany, tuples built in advance.

    What SQLite alone costs for this schema (every index and the foreign keys) on this machine:
    the ceiling any importer written over it can reach.
    """
    run_upgrade(f"sqlite+aiosqlite:///{path}")
    con = sqlite3.connect(path, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "cache_size=-65536"):
        con.execute(f"PRAGMA {pragma}")
    now = "2026-01-01 00:00:00.000000"
    con.executemany("INSERT INTO customer (id, tags, orders_count, total_spent, created_at, updated_at)"
                    " VALUES (?, '[]', 0, 0, ?, ?)", ((i + 1, now, now) for i in range(customers)))
    rng = random.Random(7)
    batches = []
    for start in range(0, orders, 5000):
        ids = range(start + 1, min(start + 5001, orders + 1))
        batches.append((
            [(i, rng.randrange(1, customers + 1), "shopify", f"#{100000 + i}", str(5_000_000 + i),
              f"2024-01-01 00:{i % 60:02d}:00.000000", "paid", 1200.0, "JPY", "0" * 32) for i in ids],
            [(i, "TEA-001", "有機煎茶 100g", 1, 1200.0) for i in ids]))
    started = time.perf_counter()
    for order_rows, item_rows in batches:
        con.execute("BEGIN IMMEDIATE")
        con.executemany('INSERT INTO "order" (id, customer_id, source, number, external_id, '
                        "ordered_at, status, total, currency, digest) VALUES (?,?,?,?,?,?,?,?,?,?)",
                        order_rows)
        con.executemany("INSERT INTO order_item (order_id, sku, name, quantity, unit_price) "
                        "VALUES (?,?,?,?,?)", item_rows)
        con.execute("COMMIT")
    elapsed = time.perf_counter() - started
    print(f"floor: {orders} orders and their items by bare executemany in {elapsed:.1f}s = "
          f"{orders / elapsed:,.0f} orders/s")
    con.close()


if __name__ == "__main__":
    main()
