"""Ingest and inbox benchmarks on the embedded defaults (SQLite, one process).

    python -m bench.ingest --messages 5000 --concurrency 20 --tickets 100000

1. POST /api/inbound: latency and throughput of the one ingest path, new customers each time.
2. The inbox with --tickets tickets: first page, a page deep in the list by keyset, a Japanese
   search, and the status counts.
"""

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from bench.stats import Server, rss_mib, summary
from helpdesk.auth.service import hash_password
from helpdesk.migrations import run_upgrade

TOKEN = "bench-inbound"
WORDS = ["注文", "配送", "返品", "交換", "湯呑み", "割れて", "領収書", "ギフト", "定期便", "解約"]


async def post_messages(url: str, count: int, concurrency: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            started = time.perf_counter()
            response = await client.post("/api/inbound", headers={
                "Authorization": f"Bearer {TOKEN}", "Idempotency-Key": f"bench-{i}"}, json={
                "channel": "api", "external_id": f"conv-{i}", "body": f"{random.choice(WORDS)}の件 {i}",
                "from": {"name": f"顧客 {i}", "email": f"c{i}@example.jp",
                         "phone": f"090{i:08d}"}})
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def bulk_tickets(db_path: Path, count: int) -> None:
    """Insert ``count`` tickets, customers and messages with plain SQL (setup, not measured)."""
    engine = create_engine(f"sqlite:///{db_path}")
    statuses = ["unhandled", "in_progress", "pending", "resolved", "no_action"]
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO user (email, name, role, language, timezone, password_hash,"
                             " is_active, failed_logins, created_at) VALUES ('sup@example.com',"
                             f" 'sup', 'supervisor', 'ja', 'Asia/Tokyo', '{hash_password('bench-pass')}',"
                             " 1, 0, CURRENT_TIMESTAMP)")
        rows = []
        for i in range(count):
            at = f"2026-{1 + i * 11 // count:02d}-{1 + i % 28:02d} {i % 24:02d}:00:00.{i % 1000000:06d}"
            rows.append({"i": i, "n": 100000 + i, "status": statuses[i % 5], "at": at,
                         "body": f"{random.choice(WORDS)}について {random.choice(WORDS)} #{i}"})
        conn.execute(text("INSERT INTO customer (id, name, tags, orders_count, total_spent, created_at,"
                          " updated_at) VALUES (:i + 1, 'bench', '[]', 0, 0, :at, :at)"), rows)
        conn.execute(text(
            "INSERT INTO ticket (id, number, subject, status, priority, channel, inbox_id, customer_id,"
            " token, version, created_at, updated_at, last_message_at) VALUES (:i + 1, :n, :body,"
            " :status, 'normal', 'email', 1, :i + 1, 'tok' || :i, 1, :at, :at, :at)"), rows)
        conn.execute(text("INSERT INTO message (ticket_id, direction, internal, channel, body_text,"
                          " auto_reply, created_at) VALUES (:i + 1, 'in', 0, 'email', :body, 0, :at)"),
                     rows)
        conn.execute(text("INSERT INTO search_entry (kind, ref_id, ticket_id, customer_id, text)"
                          " VALUES ('message', :i + 1, :i + 1, :i + 1, :body)"), rows)
    engine.dispose()


async def inbox_reads(url: str, rounds: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        token = (await client.post("/api/auth/token", json={"email": "sup@example.com",
                                                            "password": "bench-pass"})).json()
        headers = {"Authorization": f"Bearer {token['access_token']}"}
        cursor = None
        for _ in range(200):  # walk 10,000 tickets deep to find a deep cursor
            page = (await client.get("/api/tickets", params={"limit": 50, **(
                {"cursor": cursor} if cursor else {})}, headers=headers)).json()
            cursor = page["next_cursor"]
        for name, params in (("inbox first page", {"limit": 50}),
                             ("inbox page 10,000 deep (keyset)", {"limit": 50, "cursor": cursor}),
                             ("inbox 未対応 tab", {"limit": 50, "status": "unhandled"}),
                             ("search 湯呑み", {"limit": 50, "q": "湯呑み"}),
                             ("search 返品 (2 chars)", {"limit": 50, "q": "返品"})):
            samples = []
            for _ in range(rounds):
                started = time.perf_counter()
                response = await client.get("/api/tickets", params=params, headers=headers)
                samples.append(time.perf_counter() - started)
                assert response.status_code == 200
            print(summary(name, samples))
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            await client.get("/api/tickets/counts", headers=headers)
            samples.append(time.perf_counter() - started)
        print(summary("status counts", samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        env = {"HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{db}", "HELPDESK_INBOUND_TOKEN": TOKEN}
        with Server(env) as server:
            latencies, wall = asyncio.run(post_messages(server.url, args.messages, args.concurrency))
            print(summary(f"POST /api/inbound (concurrency {args.concurrency})", latencies, wall))
            assert server.process is not None
            print(f"server RSS after ingest: {rss_mib(server.process.pid):.0f} MiB")
        db2 = Path(tmp) / "inbox.db"
        run_upgrade(f"sqlite+aiosqlite:///{db2}")
        started = time.perf_counter()
        bulk_tickets(db2, args.tickets)
        print(f"setup: {args.tickets} tickets in {time.perf_counter() - started:.1f}s")
        with Server({"HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{db2}"}) as server:
            asyncio.run(inbox_reads(server.url, args.rounds))
            assert server.process is not None
            print(f"server RSS after reads: {rss_mib(server.process.pid):.0f} MiB")


if __name__ == "__main__":
    main()
