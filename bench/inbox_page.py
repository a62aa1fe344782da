"""The inbox page and its live refresh under a large ticket table; counters against COUNT(*).

    .venv/bin/python bench/inbox_page.py [--tickets 100000] [--requests 300]

Fills a fresh SQLite database (or HELPDESK_BENCH_DATABASE_URL) with tickets, serves the app on
a loopback port and fetches the page as a signed-in supervisor, one request at a time.
"""

import argparse
import asyncio
import os
import resource
import secrets
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn
from sqlalchemy import func, insert, select

from helpdesk.app import SERVER_OPTIONS, create_app
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role, SessionKind
from helpdesk.config import Settings
from helpdesk.db import create_engine, utcnow
from helpdesk.migrations import run_upgrade
from helpdesk.realtime.log import event_sessions
from helpdesk.tickets import counts
from helpdesk.tickets.models import Ticket

SECRET = "bench-secret-key-that-is-long-enough-0123456789"
STATUSES = ["unhandled", "in_progress", "pending", "resolved", "no_action"]


async def fill(url: str, n: int) -> str:
    engine = create_engine(url)
    async with event_sessions(engine)() as session:
        user = await auth.create_user(session, email="boss@example.com", name="boss",
                                      role=Role.supervisor, password="bench-password")
        await session.commit()
        now = utcnow()
        rows = [{"number": 10_000 + i, "subject": f"問い合わせ {i}", "status": STATUSES[i % 5],
                 "priority": "normal", "channel": "email", "inbox_id": 1, "token": secrets.token_hex(8),
                 "version": 1, "created_at": now, "updated_at": now} for i in range(n)]
        table = Ticket.__table__  # type: ignore[attr-defined]
        for start in range(0, n, 5000):  # bulk rows: the counters are filled below in one statement
            await session.execute(insert(table), rows[start:start + 5000])
        await counts.recount(session)
        await session.commit()
        token = await auth.sign_in(session, secret_key=SECRET, user=user, kind=SessionKind.browser,
                                   ttl_seconds=86400)
        await session.commit()
    await engine.dispose()
    return token


async def compare_counts(url: str, rounds: int) -> tuple[list[float], list[float]]:
    engine = create_engine(url)
    kept, counted = [], []
    async with event_sessions(engine)() as session:
        for _ in range(rounds):
            t0 = time.perf_counter()
            await counts.by_status(session, inbox_ids=[1])
            kept.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await session.execute(select(Ticket.status, func.count()).where(Ticket.inbox_id == 1)
                                  .group_by(Ticket.status))
            counted.append(time.perf_counter() - t0)
    await engine.dispose()
    return kept, counted


def serve(url: str) -> tuple[uvicorn.Server, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(_env_file=None, database_url=url, secret_key=SECRET,  # type: ignore[call-arg]
                        htmx_cdn_url="", run_workers=False)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", **SERVER_OPTIONS))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, port


async def measure(port: int, token: str, n: int, headers: dict[str, str]) -> list[float]:
    timings = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                 cookies={SESSION_COOKIE: token}) as client:
        for _ in range(n):
            t0 = time.perf_counter()
            response = await client.get("/inbox?status=unhandled", headers=headers)
            timings.append(time.perf_counter() - t0)
            assert response.status_code == 200
    return timings


def report(name: str, timings: list[float]) -> None:
    ordered = sorted(timings)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
    print(f"{name:<38} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  {len(ordered) / sum(ordered):7.0f}/s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("HELPDESK_BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}"
        run_upgrade(url)
        token = asyncio.run(fill(url, args.tickets))
        kept, counted = asyncio.run(compare_counts(url, 50))
        server, port = serve(url)
        page = asyncio.run(measure(port, token, args.requests, {}))
        live = asyncio.run(measure(port, token, args.requests,
                                   {"HX-Request": "true", "HX-Target": "ticket-list"}))
        server.should_exit = True
        print(f"{args.tickets} tickets, {url.split(':')[0]}")
        report("status counts from ticket_count", kept)
        report("status counts by COUNT(*)", counted)
        report("GET /inbox (full page, 50 rows)", page)
        report("live refresh (list + counts fragment)", live)
        print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
