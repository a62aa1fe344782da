"""Ingest and inbox benchmarks on the embedded defaults (SQLite, one process).

    .venv/bin/python -m bench.ingest --messages 3000 --clients 8 32 --sockets 200 [--mode email]
    .venv/bin/python -m bench.ingest --tree /path/to/other/checkout …   (that checkout's server)
    .venv/bin/python -m bench.ingest --inbox --tickets 100000

1. Ingest (``--mode api``: ``POST /api/inbound``, a new customer each time; ``--mode email``:
   ``POST /webhooks/email``, Japanese ISO-2022-JP mails from new senders) from ``--clients``
   concurrent clients, while ``--sockets`` operator sockets listen. Every socket must receive
   every message's ``message.created`` exactly once, else the run fails. Prints p50/p99 latency,
   throughput, the server process's CPU time per message (user + system, from /proc) and its RSS.
   ``--tree`` serves from another checkout (its own ``.venv``), to put two versions side by side.
2. ``--inbox``: the inbox with --tickets tickets: first page, a page deep in the list by keyset,
   a Japanese search, and the status counts.
"""

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

from bench.fanout import make_staff, raise_fd_limit
from bench.stats import Server, rss_mib, summary
from helpdesk.auth.service import hash_password
from helpdesk.migrations import run_upgrade

TOKEN = "bench-inbound-token"
SECRET = "bench-secret-key-that-is-long-enough-0123456789"
WORDS = ["注文", "配送", "返品", "交換", "湯呑み", "割れて", "領収書", "ギフト", "定期便", "解約"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def api_request(i: int, run: str) -> dict[str, object]:
    body = f"{random.choice(WORDS)}の件 {i}\n①　ｶﾀｶﾅ 〜 {run}"
    return {"url": "/api/inbound", "headers": {"Authorization": f"Bearer {TOKEN}",
                                               "Idempotency-Key": f"{run}-{i}"},
            "json": {"channel": "api", "external_id": f"conv-{run}-{i}", "body": body,
                     "from": {"name": f"顧客 {i}", "email": f"c{i}.{run}@example.jp",
                              "phone": f"090{i:08d}"}}}


def email_request(i: int, run: str) -> dict[str, object]:
    mail = EmailMessage()
    mail["From"] = f"c{i}.{run}@example.jp"
    mail["To"] = "support@example.com"
    mail["Subject"] = f"{random.choice(WORDS)}について（注文番号 {i}）"
    mail["Message-ID"] = make_msgid(f"{run}.{i}", "example.jp")
    mail.set_content(f"お世話になっております。\n{random.choice(WORDS)}の件でご相談です。\n"
                     f"注文 {i} の商品が届いておりません。〜　全角スペース\n", charset="iso-2022-jp")
    return {"url": "/webhooks/email", "content": mail.as_bytes(),
            "headers": {"Authorization": f"Bearer {TOKEN}"}}


async def post_all(url: str, requests: list[dict[str, object]], clients: int,
                   ) -> tuple[list[float], float, set[int]]:
    """Post every request from ``clients`` concurrent clients; latencies, wall time, message ids."""
    latencies: list[float] = []
    ids: set[int] = set()
    pending = iter(requests)

    async def client_loop(client: httpx.AsyncClient) -> None:
        for request in pending:
            started = time.perf_counter()
            response = await client.post(**request)  # type: ignore[arg-type]
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 201, response.text
            ids.add(response.json()["message_id"])

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
        return latencies, time.perf_counter() - started, ids


class Listener:
    """One operator socket that resumes after its last seq whenever the server closes it (a
    socket that falls behind is closed and told to resume), and keeps every message id it got."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.seq = 10**9  # join live: only what commits from now on
        self.message_ids: list[int] = []
        self.reconnects = 0
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        while True:
            try:
                async with connect(f"{self.url}?token={self.token}&after={self.seq}", compression=None,
                                   proxy=None, open_timeout=120, ping_interval=None,
                                   max_queue=None) as ws:
                    async for raw in ws:
                        frame = json.loads(raw)
                        if "seq" in frame:
                            self.seq = frame["seq"]
                        if frame["type"] == "message.created":
                            self.message_ids.append(frame["data"]["message_id"])
            except (OSError, WebSocketException):
                pass
            self.reconnects += 1

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def listening(url: str, tokens: list[str], count: int) -> list[Listener]:
    listeners = [Listener(url, tokens[n % len(tokens)]) for n in range(count)]
    return listeners


async def all_delivered(listeners: list[Listener], ids: set[int], limit: float) -> None:
    """Every socket got each of ``ids``' ``message.created`` exactly once (fails after ``limit``)."""
    deadline = time.monotonic() + limit
    while any(len(listener.message_ids) < len(ids) for listener in listeners):
        if time.monotonic() > deadline:
            short = sorted(len(listener.message_ids) for listener in listeners)
            raise RuntimeError(f"sockets still short of {len(ids)} messages: {short[:10]}…")
        await asyncio.sleep(0.05)
    for listener in listeners:
        got = listener.message_ids
        if sorted(got) != sorted(ids):
            missing, twice = ids - set(got), len(got) - len(set(got))
            raise RuntimeError(f"a socket missed {len(missing)} messages, got {twice} twice")


async def ingest_run(url: str, pid: int, args: argparse.Namespace, clients: int,
                     tokens: list[str]) -> dict[str, object]:
    raise_fd_limit(args.sockets * 2 + 256)
    make = email_request if args.mode == "email" else api_request
    listeners = await listening(url.replace("http", "ws") + "/ws", tokens, args.sockets)
    await post_all(url, [make(i, "warm") for i in range(50)], clients)
    for n in range(100):  # until every socket is live: each has had the same latest message
        _, _, (settle,) = await post_all(url, [make(n, "settle")], 1)
        for _ in range(200):
            if all(settle in listener.message_ids for listener in listeners):
                break
            await asyncio.sleep(0.05)
        else:
            continue
        break
    for listener in listeners:
        listener.message_ids.clear()
        listener.reconnects = 0
    requests = [make(i, f"c{clients}") for i in range(args.messages)]
    cpu_before = cpu_seconds(pid)
    latencies, wall, ids = await post_all(url, requests, clients)
    cpu_posted = cpu_seconds(pid)
    await all_delivered(listeners, ids, limit=600)
    cpu_delivered = cpu_seconds(pid)
    reconnects = sum(listener.reconnects for listener in listeners)
    for listener in listeners:
        await listener.stop()
    name = "POST /webhooks/email" if args.mode == "email" else "POST /api/inbound"
    return {"line": summary(f"{name}, {clients} clients, {args.sockets} sockets", latencies, wall),
            "cpu_ms_per_message": round((cpu_delivered - cpu_before) * 1000 / len(ids), 2),
            "cpu_ms_per_message_until_answered": round((cpu_posted - cpu_before) * 1000 / len(ids), 2),
            "delivered": f"{len(ids)} messages x {len(listeners)} sockets, each once",
            "resumes_after_falling_behind": reconnects,
            "rss_mib": round(rss_mib(pid), 1)}


def ingest(args: argparse.Namespace) -> None:
    tree = Path(args.tree).resolve() if args.tree else None
    for clients in args.clients:
        with tempfile.TemporaryDirectory(prefix="ingest-bench-", dir="/tmp") as tmp:
            database_url = f"sqlite+aiosqlite:///{tmp}/bench.db"
            run_upgrade(database_url)
            tokens = asyncio.run(make_staff(database_url, args.operators))
            env = {"HELPDESK_DATABASE_URL": database_url, "HELPDESK_INBOUND_TOKEN": TOKEN,
                   "HELPDESK_SECRET_KEY": SECRET}
            os.environ.pop("HELPDESK_REDIS_URL", None)
            python = str(tree / ".venv" / "bin" / "python") if tree else sys.executable
            with Server(env, python=python, cwd=str(tree) if tree else None) as server:
                assert server.process is not None
                result = asyncio.run(ingest_run(server.url, server.process.pid, args, clients, tokens))
            print(json.dumps({"tree": str(tree or Path.cwd()), "mode": args.mode, **result},
                             ensure_ascii=False), flush=True)


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
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--mode", choices=["api", "email"], default="api")
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--clients", "--concurrency", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--operators", type=int, default=20, help="distinct users behind the sockets")
    parser.add_argument("--tree", help="serve from this checkout (its .venv) instead of this one")
    parser.add_argument("--inbox", action="store_true", help="the inbox reads instead of ingest")
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    if not args.inbox:
        ingest(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
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
