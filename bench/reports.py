"""The reports page and the CSV export over a million tickets.

    .venv/bin/python bench/reports.py [--tickets 1000000] [--days 365] [--requests 50]

Fills a fresh SQLite database with tickets spread over ``--days`` days, 20 operators and three
inboxes, and with the rollups those tickets' events would have folded into (written directly:
folding four million events would take the benchmark most of an hour and measures something
else, reported separately below on 20,000 events). Then serves the app on a loopback port and
times, one request at a time as a signed-in supervisor: the reports page for the last 7 days and
for this month, the operators API over 30 days, and the whole tickets table as streamed CSV
while a thread samples the process's resident memory.
"""

import argparse
import asyncio
import random
import secrets
import sqlite3
import tempfile
import threading
import time
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from bench.inbox_page import SECRET, report, serve
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role
from helpdesk.db import create_engine
from helpdesk.migrations import run_upgrade
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event
from helpdesk.reports import histogram, tasks
from helpdesk.reports.calendar import ReportCalendar
from helpdesk.storage.counters import next_counter

TOKYO = ZoneInfo("Asia/Tokyo")
# Server and client share the process: on a busy host the CPU a request costs says more than
# the wall clock, which also counts the time spent waiting for a core.
CPU_PER_REQUEST: list[float] = []
OPERATORS = 20
INBOXES = 3


async def staff(url: str) -> tuple[str, list[int]]:
    engine = create_engine(url)
    ids = []
    async with event_sessions(engine)() as session:
        boss = await auth.create_user(session, email="boss@example.com", name="boss",
                                      role=Role.supervisor, password="bench-password")
        for n in range(OPERATORS):
            op = await auth.create_user(session, email=f"op{n}@example.com", name=f"オペレーター{n}",
                                        role=Role.operator, password="bench-password")
            ids.append(op.id)
        await session.commit()
        token = auth.issue_token(SECRET, boss, salt=auth.SESSION_SALT)
    await engine.dispose()
    return token, [i for i in ids if i is not None]


async def sign_in(url: str) -> str:
    """A session for the supervisor of a database filled earlier."""
    engine = create_engine(url)
    async with event_sessions(engine)() as session:
        boss = next(u for u in await auth.all_users(session) if u.email == "boss@example.com")
        token = auth.issue_token(SECRET, boss, salt=auth.SESSION_SALT)
    await engine.dispose()
    return token


def fill(path: Path, n: int, days: int, operators: list[int]) -> None:
    """Tickets and the rollups their events make, with plain sqlite3 (minutes, not hours)."""
    rng = random.Random(7)
    now = datetime.now(UTC)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    for i in range(2, INBOXES + 1):
        conn.execute("INSERT INTO inbox (name, email_charset, created_at) VALUES (?, 'utf-8', ?)",
                     (f"inbox{i}", now.isoformat()))
    op_days: dict[tuple[date, int, int], list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    inbox_days: dict[tuple[date, int], list[int]] = defaultdict(lambda: [0, 0])
    tickets, samples = [], []
    histograms: dict[tuple[str, str, int, int], int] = defaultdict(int)
    for i in range(n):
        created = now - timedelta(seconds=rng.uniform(0, days * 86400))
        inbox, op = 1 + i % INBOXES, operators[i % len(operators)]
        first, resolve = rng.expovariate(1 / 1800), rng.expovariate(1 / 14400)
        resolved = created + timedelta(seconds=first + resolve)
        open_ = resolved > now or i % 10 == 0
        day, done_day = created.astimezone(TOKYO).date(), resolved.astimezone(TOKYO).date()
        stamp = lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f")  # noqa: E731
        tickets.append((10_000 + i, f"問い合わせ {i}", "in_progress" if open_ else "resolved",
                        "normal", "email", inbox, op, secrets.token_hex(8), 1, stamp(created),
                        stamp(resolved if not open_ else created), None if open_ else stamp(resolved)))
        inbox_days[(day, inbox)][0] += 1
        samples.append(("first_response", day.isoformat(), op, inbox, i + 1, first))
        histograms[("first_response", day.isoformat(), op, histogram.bucket(first))] += 1
        op_days[(day, op, inbox)][1] += 1
        if not open_:
            inbox_days[(done_day, inbox)][1] += 1
            op_days[(done_day, op, inbox)][0] += 1
            op_days[(done_day, op, inbox)][3] += resolve
            samples.append(("resolution", done_day.isoformat(), op, inbox, i + 1, first + resolve))
            histograms[("resolution", done_day.isoformat(), op, histogram.bucket(first + resolve))] += 1
        if len(tickets) == 50_000:
            _flush(conn, tickets, samples)
    _flush(conn, tickets, samples)
    conn.executemany(
        "INSERT INTO report_operator_day (day, user_id, inbox_id, handled, replies, calls_answered, "
        "handling_seconds) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(d.isoformat(), u, b, *v) for (d, u, b), v in op_days.items()])
    conn.executemany(
        "INSERT INTO report_inbox_day (day, inbox_id, created, resolved, backlog_unhandled, "
        "backlog_in_progress, backlog_pending, sla_met, sla_total, calls_offered, calls_answered, "
        "calls_abandoned, calls_answered_20s, wait_seconds, talk_seconds) "
        "VALUES (?, ?, ?, ?, 0, ?, 0, 0, 0, 0, 0, 0, 0, 0, 0)",
        [(d.isoformat(), b, c, r, n // 10) for (d, b), (c, r) in inbox_days.items()])
    conn.executemany("INSERT INTO report_histogram (metric, day, user_id, bucket, n) VALUES (?, ?, ?, ?, ?)",
                     [(*key, n) for key, n in histograms.items()])
    conn.commit()
    conn.close()


def _flush(conn: sqlite3.Connection, tickets: list[Any], samples: list[Any]) -> None:
    conn.executemany(
        "INSERT INTO ticket (number, subject, status, priority, channel, inbox_id, assignee_id, "
        "token, version, created_at, updated_at, resolved_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        tickets)
    conn.executemany("INSERT INTO report_sample (metric, day, user_id, inbox_id, ticket_id, seconds) "
                     "VALUES (?, ?, ?, ?, ?, ?)", samples)
    conn.commit()
    tickets.clear()
    samples.clear()


async def timed_gets(port: int, token: str, path: str, n: int) -> list[float]:
    """Wall-clock seconds of ``n`` requests one at a time (and the process's CPU per request)."""
    timings = []
    cpu = time.process_time()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120,
                                 cookies={SESSION_COOKIE: token}) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            response = await client.get(path)
            timings.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text[:300]
    CPU_PER_REQUEST.append((time.process_time() - cpu) / n)
    return timings


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def export(port: int, token: str) -> tuple[float, int, int, float, float, list[str]]:
    """Seconds, bytes and rows of the whole tickets export; RSS before and its peak during."""
    peak, stop = [rss_mib()], threading.Event()
    before = peak[0]

    def sample() -> None:
        while not stop.wait(0.05):
            peak.append(rss_mib())

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    size = rows = 0
    marks: list[str] = []
    mark_every = next_mark = 200_000
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600,
                                 cookies={SESSION_COOKIE: token}) as client, client.stream(
            "GET", "/api/exports/tickets.csv") as response:
        assert response.status_code == 200
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            rows += chunk.count(b"\r\n")
            if rows >= next_mark:
                marks.append(f"{rows // 1000}k rows {rss_mib():.0f} MiB")
                next_mark += mark_every
    seconds = time.perf_counter() - t0
    stop.set()
    watcher.join()
    return seconds, size, rows - 1, before, max(peak), marks


def fold_rate(events: int) -> float:
    """Events folded per second by ``helpdesk reports rebuild``'s code, on a scripted log."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'fold.db'}"
        run_upgrade(url)
        return asyncio.run(_fold(url, events))


async def _fold(url: str, events: int) -> float:
    engine = create_engine(url)
    sessions = event_sessions(engine)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    async with sessions() as session:
        last = await next_counter(session, "event_seq", events)
        for n in range(events):
            at = start + timedelta(seconds=n * 5)
            ticket_id = n // 4 + 1
            status = ("unhandled", "in_progress", "pending", "resolved")[n % 4]
            session.add(Event(seq=last - events + 1 + n, type="ticket.updated", at=at, inbox_id=1,
                              data={"ticket": {"id": ticket_id, "status": status,
                                               "assignee_id": 1 + ticket_id % 20, "inbox_id": 1,
                                               "created_at": at.isoformat(),
                                               "first_response_at": at.isoformat()}}))
        await session.commit()
    t0 = time.perf_counter()
    await tasks.rebuild(sessions, ReportCalendar(zone=TOKYO))
    seconds = time.perf_counter() - t0
    await engine.dispose()
    return events / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--no-export", action="store_true", help="time the pages only")
    parser.add_argument("--db", type=Path, default=None,
                        help="keep the filled database here (and reuse it when it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.db or Path(tmp) / "reports.db"
        url = f"sqlite+aiosqlite:///{path}"
        if path.exists():
            token = asyncio.run(sign_in(url))
        else:
            run_upgrade(url)
            token, operators = asyncio.run(staff(url))
            t0 = time.perf_counter()
            fill(path, args.tickets, args.days, operators)
            print(f"{args.tickets} tickets over {args.days} days filled in "
                  f"{time.perf_counter() - t0:.0f} s ({path.stat().st_size / 2**20:.0f} MiB)")
        server, port = serve(url)
        today = datetime.now(TOKYO).date()
        month_ago = (today - timedelta(days=29)).isoformat()
        for name, path_ in (("GET /reports (7 days)", "/reports"),
                            ("GET /reports?range=month", "/reports?range=month"),
                            ("GET /reports?range=today", "/reports?range=today"),
                            ("GET /api/reports/operators (30 days)",
                             f"/api/reports/operators?from={month_ago}&to={today.isoformat()}"),
                            ("GET /api/reports/inboxes (30 days)",
                             f"/api/reports/inboxes?from={month_ago}&to={today.isoformat()}")):
            asyncio.run(timed_gets(port, token, path_, 3))  # warm the page cache
            report(name, asyncio.run(timed_gets(port, token, path_, args.requests)))
            print(f"{'':<38} CPU {CPU_PER_REQUEST[-1] * 1000:7.2f} ms a request (server and client)")
        if not args.no_export:
            seconds, size, rows, before, peak, marks = asyncio.run(export(port, token))
            print(f"GET /api/exports/tickets.csv: {rows} rows, {size / 2**20:.0f} MiB in "
                  f"{seconds:.1f} s ({rows / seconds:,.0f} rows/s); RSS {before:.0f} MiB before, "
                  f"peak {peak:.0f} MiB")
            print("  RSS as it streamed: " + ", ".join(marks))
        server.should_exit = True
    if not args.no_export:
        print(f"rollup fold: {fold_rate(20_000):,.0f} events/s (20,000 ticket events)")


if __name__ == "__main__":
    main()
