"""The supervisor board and the ticket counts over a large ticket table.

    .venv/bin/python -m bench.board [--tickets 1000000] [--days 365] [--requests 100]
        [--db PATH] [--parts] [--explain]

SQLite by default (``--db`` keeps the filled file and reuses it when it exists); PostgreSQL when
HELPDESK_BENCH_DATABASE_URL is set (a database that already holds tickets is reused as it is).

The fill spreads the tickets over ``--days`` days (as many each day), three inboxes, 20
operators and the channels. Tickets older than three days are settled (resolved, some 対応不要);
the last three days' hold the open work (未対応 partly unassigned, 対応中, 保留) with first
responses, resolutions and due times, so today's figures and the queue have real rows to read.
Counters are then written from the tickets in one statement each, as ``counts.recount`` does.

Then the app is served on a loopback port and, one request at a time as a signed-in
supervisor, the board page, the counts API and the inbox's counts fragment are timed (p50/p99,
requests a second, the process's CPU per request: server and client share the process) and the
process's resident memory is read. ``--parts`` times each part of the board in-process, and
``--explain`` prints the plan of each of its ticket statements.
"""

import argparse
import asyncio
import os
import random
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from bench.inbox_page import report, serve
from bench.reports import CPU_PER_REQUEST, rss_mib, sign_in, timed_gets
from helpdesk.assignment import service as assignment
from helpdesk.assignment.models import AssignmentPolicy
from helpdesk.auth import service as auth
from helpdesk.auth.models import Role
from helpdesk.db import create_engine
from helpdesk.inboxes import service as inbox_service
from helpdesk.migrations import run_upgrade
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.presence import presence_list
from helpdesk.reports import service
from helpdesk.sla import display as sla_display
from helpdesk.sla import service as sla
from helpdesk.tickets import counts, pace
from helpdesk.tickets.models import Ticket

TOKYO = ZoneInfo("Asia/Tokyo")
OPERATORS = 20
INBOXES = ("default", "shop", "wholesale")
CHANNELS = (("email", 45), ("chat", 20), ("line", 15), ("phone", 10), ("api", 5), ("sms", 5))
RECENT_DAYS = 3


async def staff(engine: AsyncEngine) -> list[int]:
    """A supervisor, 20 operators in the inboxes, and least-loaded assignment in the first."""
    ids: list[int] = []
    async with event_sessions(engine)() as session:
        for name in INBOXES[1:]:
            await inbox_service.create_inbox(session, name=name)
        await auth.create_user(session, email="boss@example.com", name="boss", role=Role.supervisor,
                               password="bench-password")
        for n in range(OPERATORS):
            op = await auth.create_user(session, email=f"op{n}@example.com", name=f"オペレーター{n}",
                                        role=Role.operator, password="bench-password")
            assert op.id is not None
            ids.append(op.id)
            await inbox_service.join_named(session, user_id=op.id, names=INBOXES[: 1 + n % 3])
        default = await inbox_service.inbox_by_name(session, "default")
        session.add(AssignmentPolicy(inbox_id=default.id or 1, policy="least_loaded",
                                     capacity={str(i): 12.0 for i in ids}, weights={"email": 0.2}))
        await session.commit()
    return ids


def ticket_row(rng: random.Random, i: int, now: datetime, days: int, operators: list[int],
               inboxes: list[int]) -> dict[str, Any]:
    """One ticket: settled when older than a few days, open work and today's pace otherwise."""
    age = rng.uniform(0, days * 86400)
    created = now - timedelta(seconds=age)
    channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
    recent = age < RECENT_DAYS * 86400
    status = (rng.choices(["unhandled", "in_progress", "pending", "resolved", "no_action"],
                          [25, 25, 10, 35, 5])[0] if recent
              else rng.choices(["resolved", "no_action"], [90, 10])[0])
    first = created + timedelta(seconds=rng.expovariate(1 / 1800))
    resolved = first + timedelta(seconds=rng.expovariate(1 / 14400))
    answered = status != "unhandled" and first < now
    if status == "resolved" and resolved > now:
        resolved = now - timedelta(seconds=rng.uniform(0, min(age, 600)))
    assignee = None if status == "unhandled" and rng.random() < 0.6 else rng.choice(operators)
    running = status in ("unhandled", "in_progress")
    due = created + timedelta(hours=rng.choice((1, 4, 8, 24))) if running else None
    return {
        "number": 10_000 + i, "subject": f"問い合わせ {i}", "status": status, "priority": "normal",
        "channel": channel, "inbox_id": inboxes[i % len(inboxes)], "assignee_id": assignee,
        "token": secrets.token_hex(8), "version": 1, "created_at": created,
        "updated_at": resolved if status == "resolved" else (first if answered else created),
        "first_response_at": first if answered else None, "last_message_at": created,
        "resolved_at": resolved if status == "resolved" else None,
        "sla_due_at": due, "sla_check_at": due, "sla_breached": False, "sla_breaches": "",
        "pending_reason": "お客様の返信待ち" if status == "pending" else None,
    }


async def fill(engine: AsyncEngine, n: int, days: int) -> None:
    """``n`` tickets in batches of Core inserts, then the counters from them."""
    operators = await staff(engine)
    rng, now = random.Random(25), datetime.now(UTC)
    table = Ticket.__table__  # type: ignore[attr-defined]
    async with event_sessions(engine)() as session:
        inboxes = [i.id for i in await inbox_service.all_inboxes(session) if i.id is not None]
        for start in range(0, n, 10_000):
            rows = [ticket_row(rng, i, now, days, operators, inboxes)
                    for i in range(start, min(n, start + 10_000))]
            await session.execute(insert(table), rows)
            await session.commit()
        await counts.recount(session)
        await session.commit()


async def _time_parts(engine: AsyncEngine, rounds: int) -> None:
    """Each of the board's reads on its own, p50/p99 over ``rounds``."""
    parts: dict[str, Callable[[AsyncSession], Awaitable[object]]] = {
        "board (service.board)": lambda s: service.board(s, zone=TOKYO),
        "  load by assignee (ticket_count)": lambda s: counts.by_assignee(s),
        "  today's pace (ticket_pace)": lambda s: pace.since(s, service.start_of_day(TOKYO)),
        "  queue (12 longest waiting)": lambda s: service.waiting(s, service.QUEUE_LIMIT),
        "capacity use (the board's, from ticket_count)": service.capacity_use,
        "capacity use (assignment's, counted)": assignment.capacity_use,
        "SLA at risk": lambda s: sla.at_risk(s, now=datetime.now(UTC), near=sla_display.NEAR),
        "presence": presence_list,
    }
    async with event_sessions(engine, read_only=True)() as session:
        for name, part in parts.items():
            await part(session)
            timings = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                await part(session)
                timings.append(time.perf_counter() - t0)
            report(name, timings)


async def _explain(engine: AsyncEngine) -> None:
    """The plan of each statement the board runs on the ticket table (and its kept figures)."""
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN ANALYZE "
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        if "ticket" in statement and not statement.startswith("EXPLAIN"):
            captured.append((statement, parameters))

    from sqlalchemy import event as sa_event
    sa_event.listen(engine.sync_engine, "before_cursor_execute", capture)
    async with event_sessions(engine, read_only=True)() as session:
        await service.board(session, zone=TOKYO)
        await service.capacity_use(session)
        await sla.at_risk(session, now=datetime.now(UTC), near=sla_display.NEAR)
    sa_event.remove(engine.sync_engine, "before_cursor_execute", capture)
    async with engine.connect() as conn:
        for statement, parameters in captured:
            print("\n" + " ".join(statement.split()))
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            if engine.dialect.name == "sqlite":
                async with driver.execute(prefix + statement, parameters) as cursor:
                    for row in await cursor.fetchall():
                        print("   ", row[-1])
            else:
                for row in await driver.fetch(prefix + statement, *parameters):
                    print("   ", row[0])


async def ticket_total(engine: AsyncEngine) -> int:
    async with event_sessions(engine, read_only=True)() as session:
        return int(await session.scalar(select(func.count()).select_from(Ticket)) or 0)


def prepare(args: argparse.Namespace, tmp: str) -> str:
    """The database's URL, filled with ``--tickets`` tickets unless it already holds some."""
    url = os.environ.get("HELPDESK_BENCH_DATABASE_URL") or \
        f"sqlite+aiosqlite:///{args.db or Path(tmp) / 'board.db'}"
    run_upgrade(url)

    async def filled() -> int:
        engine = create_engine(url)
        try:
            if await ticket_total(engine):
                return 0
            t0 = time.perf_counter()
            await fill(engine, args.tickets, args.days)
            return round(time.perf_counter() - t0)
        finally:
            await engine.dispose()

    seconds = asyncio.run(filled())
    if seconds:
        print(f"{args.tickets:,} tickets over {args.days} days filled in {seconds} s")
    return url


async def _analyse(url: str, args: argparse.Namespace) -> int:
    engine = create_engine(url)
    try:
        if engine.dialect.name == "postgresql":  # a fresh fill has no planner statistics yet
            async with engine.connect() as conn:
                await conn.execute(text("ANALYZE"))
                await conn.commit()
        if args.explain:
            await _explain(engine)
        if args.parts:
            await _time_parts(engine, args.requests)
        return await ticket_total(engine)
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--db", type=Path, default=None, help="SQLite file to keep and reuse")
    parser.add_argument("--parts", action="store_true", help="time each part of the board in-process")
    parser.add_argument("--explain", action="store_true", help="print the board's query plans")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = prepare(args, tmp)
        total = asyncio.run(_analyse(url, args))
        print(f"{total:,} tickets, {url.split(':')[0]}")
        token = asyncio.run(sign_in(url))
        server, port = serve(url)
        for name, path in (("GET /board", "/board"), ("GET /api/tickets/counts", "/api/tickets/counts"),
                           ("GET /inbox (counts out of band)", "/inbox?status=unhandled")):
            asyncio.run(timed_gets(port, token, path, 3))  # warm the page cache
            report(name, asyncio.run(timed_gets(port, token, path, args.requests)))
            print(f"{'':<38} CPU {CPU_PER_REQUEST[-1] * 1000:7.2f} ms a request (server and client)")
        print(f"RSS {rss_mib():.0f} MiB (server and client in one process)")
        server.should_exit = True


if __name__ == "__main__":
    main()
