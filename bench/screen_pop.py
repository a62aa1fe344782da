"""Screen-pop latency: signed Twilio voice webhook → committed ``call.ringing`` event.

Builds a SQLite database with 100k customers (one phone each) and 1M orders (one item each) by bulk
SQL, serves the app in this process (the embedded setup), and sends inbound calls from random known
customers, in assorted Japanese spellings, at a fixed rate. Latency runs from just before the
webhook request is sent until the transaction holding ``call.ringing`` commits, and until the
frame reaches the first offered operator's socket.

    .venv/bin/python -m bench.screen_pop [--customers 100000] [--orders-per-customer 10]
        [--rate 20] [--calls 400] [--db /tmp/bench_screen_pop.db]
"""

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import uvicorn
import websockets
from itsdangerous import URLSafeTimedSerializer
from twilio.request_validator import RequestValidator

from helpdesk.app import create_app
from helpdesk.auth.service import TOKEN_SALT
from helpdesk.config import Settings
from helpdesk.migrations import run_upgrade

TOKEN = "bench-twilio-auth-token"
PUBLIC_URL = "https://helpdesk.example.jp"
SALES = "+815012345678"
OPERATORS = 5


def phone_of(i: int) -> str:
    return f"+8190{10_000_000 + i:08d}"


def spell(e164: str, style: int) -> str:
    """The same number as people and carriers write it."""
    national = "0" + e164[3:]
    a, b, c = national[:3], national[3:7], national[7:]
    return [e164, f"{a}-{b}-{c}", national, f"({a}) {b}-{c}",
            f"０{national[1:]}".translate(str.maketrans("0123456789", "０１２３４５６７８９"))][style % 5]


def build(path: Path, customers: int, per_customer: int) -> None:
    """Migrate, then bulk insert staff, customers, identities, orders and items."""
    if path.exists():
        path.unlink()
    run_upgrade(f"sqlite+aiosqlite:///{path}")
    started = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).replace(tzinfo=None)
    with db:
        sales = db.execute("INSERT INTO inbox (name, phone_number, email_charset, created_at) "
                           "VALUES ('sales', ?, 'utf-8', ?)", (SALES, now)).lastrowid
        for op in range(1, OPERATORS + 1):
            db.execute("INSERT INTO user (id, email, name, role, language, timezone, password_hash, "
                       "is_active, failed_logins, created_at) VALUES (?, ?, ?, 'operator', 'ja', "
                       "'Asia/Tokyo', 'x', 1, 0, ?)", (op, f"op{op}@example.jp", f"op{op}", now))
            db.execute("INSERT INTO inbox_member (inbox_id, user_id) VALUES (?, ?)", (sales, op))
        db.executemany(
            "INSERT INTO customer (id, name, tags, orders_count, total_spent, first_order_at, "
            "last_order_at, rank, created_at, updated_at) VALUES (?, ?, '[]', ?, ?, ?, ?, 'A', ?, ?)",
            ((i, f"顧客{i}", per_customer, 5000 * per_customer, now - timedelta(days=per_customer),
              now, now, now) for i in range(1, customers + 1)))
        db.executemany(
            "INSERT INTO customer_identity (customer_id, kind, value, created_at) VALUES (?, 'phone', ?, ?)",
            ((i, phone_of(i), now) for i in range(1, customers + 1)))
        db.executemany(
            'INSERT INTO "order" (id, customer_id, source, number, ordered_at, status, total, currency) '
            "VALUES (?, ?, 'csv', ?, ?, 'shipped', 5000, 'JPY')",
            ((o, (o - 1) // per_customer + 1, f"O{o:08d}", now - timedelta(days=o % per_customer))
             for o in range(1, customers * per_customer + 1)))
        db.executemany(
            "INSERT INTO order_item (order_id, sku, name, quantity, unit_price) VALUES (?, ?, ?, 1, 5000)",
            ((o, f"SKU{o % 997}", f"商品{o % 997}") for o in range(1, customers * per_customer + 1)))
    db.execute("ANALYZE")
    db.close()
    print(f"built {customers:,} customers, {customers * per_customer:,} orders and items "
          f"in {time.perf_counter() - started:.1f} s")


async def run(path: Path, calls: int, rate: float, customers: int) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{path}",  # type: ignore[call-arg]
                        public_url=PUBLIC_URL, twilio_auth_token=TOKEN, run_workers=False)
    app = create_app(settings)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    committed: dict[int, float] = {}
    app.state.bus.listen(lambda seq: committed.setdefault(seq, time.perf_counter()))
    # The operators' browsers: one socket each (this also makes them online for routing).
    popped: dict[str, float] = {}
    sockets = [await websockets.connect(
        f"ws://127.0.0.1:{port}/ws?token={issue_token(settings.secret_key, op)}", max_size=None)
        for op in range(1, OPERATORS + 1)]
    readers = [asyncio.create_task(_read_pops(ws, popped)) for ws in sockets]
    await asyncio.sleep(settings.ws_resume_wait_seconds + 0.5)  # live, and presence recorded
    sent: dict[str, float] = {}
    round_trip: list[float] = []
    validator = RequestValidator(TOKEN)
    rng = random.Random(7)
    run_id = int(time.time())

    async def one(client: httpx.AsyncClient, n: int) -> None:
        sid = f"CA{run_id:010d}{n:022d}"
        params = {"CallSid": sid, "From": spell(phone_of(rng.randint(1, customers)), n), "To": SALES,
                  "CallStatus": "ringing", "Direction": "inbound"}
        headers = {"X-Twilio-Signature": validator.compute_signature(
            PUBLIC_URL + "/telephony/twilio/voice", params),
            "Content-Type": "application/x-www-form-urlencoded"}
        body = urlencode(params)
        sent[sid] = time.perf_counter()
        response = await client.post("/telephony/twilio/voice", content=body, headers=headers)
        round_trip.append(time.perf_counter() - sent[sid])
        assert response.status_code == 200 and "<Client " in response.text, response.text

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for n in range(20):  # warm up connections and caches
            await one(client, 10_000_000 + n)
        sent.clear()
        round_trip.clear()
        began, cpu_began = time.perf_counter(), time.process_time()
        tasks = []
        for n in range(calls):
            await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(client, n)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - began
        cpu = time.process_time() - cpu_began
    latencies = await _ringing_latencies(path, sent, committed)
    await asyncio.sleep(0.5)
    for task in readers:
        task.cancel()
    for ws in sockets:
        await ws.close()
    socket_latencies = [popped[sid] - at for sid, at in sent.items() if sid in popped]
    server.should_exit = True
    thread.join(timeout=10)
    _report(latencies, round_trip, calls, elapsed, rate)
    assert len(socket_latencies) == calls, (len(socket_latencies), calls)
    print(f"webhook -> call.ringing on the operator's socket: "
          f"p50 {_ms(socket_latencies, .5):.2f} ms  p99 {_ms(socket_latencies, .99):.2f} ms  "
          f"max {max(socket_latencies) * 1000:.2f} ms")
    print(f"CPU per call (server and load generator together) {cpu / calls * 1000:.2f} ms; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def issue_token(secret: str, user_id: int) -> str:
    """A bearer token for an operator the bench inserted by SQL."""
    return URLSafeTimedSerializer(secret, salt=TOKEN_SALT).dumps({"uid": user_id})


async def _read_pops(ws: websockets.ClientConnection, popped: dict[str, float]) -> None:
    """Note when each call's ``call.ringing`` first reaches any operator's socket."""
    async for raw in ws:
        frame = json.loads(raw)
        if frame.get("type") == "call.ringing":
            popped.setdefault(frame["data"]["call"]["call_id"], time.perf_counter())


async def _ringing_latencies(path: Path, sent: dict[str, float], committed: dict[int, float]) -> list[float]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT seq, json_extract(data, '$.call.call_id') FROM event "
                      "WHERE type = 'call.ringing'").fetchall()
    db.close()
    return [committed[seq] - sent[sid] for seq, sid in rows if sid in sent and seq in committed]


def _report(latencies: list[float], round_trip: list[float], calls: int, elapsed: float,
            rate: float) -> None:
    def ms(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    assert len(latencies) == calls, (len(latencies), calls)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"calls {calls} at {rate:g}/s offered, {calls / elapsed:.1f}/s achieved")
    print(f"webhook -> committed call.ringing: p50 {ms(latencies, .5):.2f} ms  "
          f"p99 {ms(latencies, .99):.2f} ms  max {max(latencies) * 1000:.2f} ms")
    print(f"webhook round trip (TwiML back):   p50 {ms(round_trip, .5):.2f} ms  "
          f"p99 {ms(round_trip, .99):.2f} ms")
    print(f"peak RSS {rss:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders-per-customer", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench_screen_pop.db"))
    parser.add_argument("--reuse", action="store_true", help="keep an already built database")
    args = parser.parse_args()
    if not (args.reuse and args.db.exists()):
        build(args.db, args.customers, args.orders_per_customer)
    asyncio.run(run(args.db, args.calls, args.rate, args.customers))


if __name__ == "__main__":
    main()
