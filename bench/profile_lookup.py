"""Profile by phone at shop scale: ``profiles.profile_by_phone`` and ``GET /api/customers/by-phone``.

Uses the screen-pop data set (100k customers with one phone each, 1M orders with one item each,
20k tickets; built by bulk SQL, see ``bench.screen_pop``), then

1. calls ``profile_by_phone`` directly, one lookup at a time, each in its own read session, as an
   operator of the inbox (random customers, numbers in assorted spellings);
2. serves the app with uvicorn in a process of its own and asks ``GET /api/customers/by-phone``
   one request at a time over a keep-alive connection (the view is audited: one write each).

Prints p50/p99/max latency, throughput, CPU per lookup and peak RSS for both.

    .venv/bin/python -m bench.profile_lookup [--lookups 5000] [--requests 2000]
        [--db /tmp/bench_screen_pop.db] [--reuse]
"""

import argparse
import asyncio
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import select
from sqlmodel import col

from bench.screen_pop import (
    ConnectionPool,
    bench_settings,
    build,
    free_port,
    issue_token,
    latency_line,
    peak_rss_mib,
    phone_of,
    server_cpu,
    spell,
    wait_healthy,
)
from helpdesk.auth.models import User
from helpdesk.calls.recent import recent_calls
from helpdesk.db import create_engine
from helpdesk.profiles import service as profiles
from helpdesk.realtime.log import event_sessions

OPERATOR = 1  # an operator of the sales inbox, as the screen-pop build makes them
WARM_UP = 200


async def direct(path: Path, lookups: int, customers: int) -> None:
    """``profile_by_phone`` in this process, one read session per lookup."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    reader = event_sessions(engine, read_only=True)
    async with reader() as session:
        viewer = await session.scalar(select(User).where(col(User.id) == OPERATOR))
    assert viewer is not None
    rng = random.Random(11)
    timings: list[float] = []
    cpu = 0.0
    for n in range(lookups + WARM_UP):
        phone = spell(phone_of(rng.randint(1, customers)), n)
        cpu_began, began = time.process_time(), time.perf_counter()
        async with reader() as session:
            profile = await profiles.profile_by_phone(session, phone, viewer=viewer,
                                                      recent_calls=recent_calls)
        elapsed = time.perf_counter() - began
        assert profile is not None and len(profile.orders) == 10, phone
        if n >= WARM_UP:
            timings.append(elapsed)
            cpu += time.process_time() - cpu_began
    await engine.dispose()
    print(f"profile_by_phone, {lookups} lookups (after {WARM_UP} warm-up), one at a time:")
    print(latency_line("  latency", timings))
    print(f"  throughput {len(timings) / sum(timings):.0f}/s; CPU per lookup {cpu / lookups * 1000:.2f} ms; "
          f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


async def over_http(path: Path, port: int, pid: int, requests: int, customers: int) -> None:
    """``GET /api/customers/by-phone`` against the server process, one request at a time."""
    token = issue_token(bench_settings(path).secret_key, OPERATOR, path)
    rng = random.Random(13)

    def wire(n: int) -> bytes:
        phone = quote(spell(phone_of(rng.randint(1, customers)), n))
        return (f"GET /api/customers/by-phone?phone={phone} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {token}\r\n\r\n").encode()

    pool = ConnectionPool(port)
    prepared = [wire(n) for n in range(requests + WARM_UP)]
    timings: list[float] = []
    cpu_began = 0.0
    began = time.perf_counter()
    for n, request in enumerate(prepared):
        if n == WARM_UP:
            cpu_began, began = server_cpu(pid), time.perf_counter()
        sent = time.perf_counter()
        status, body = await pool.send(request)
        assert status == 200 and '"orders"' in body, (status, body[:200])
        if n >= WARM_UP:
            timings.append(time.perf_counter() - sent)
    wall = time.perf_counter() - began
    cpu = server_cpu(pid) - cpu_began
    pool.close()
    print(f"GET /api/customers/by-phone, {requests} requests (after {WARM_UP} warm-up), one at a time:")
    print(latency_line("  latency", timings))
    print(f"  throughput {requests / wall:.0f}/s; server CPU per request {cpu / requests * 1000:.2f} ms; "
          f"server peak RSS {peak_rss_mib(pid):.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders-per-customer", type=int, default=10)
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench_screen_pop.db"))
    parser.add_argument("--reuse", action="store_true", help="keep an already built database")
    args = parser.parse_args()
    if not (args.reuse and args.db.exists()):
        build(args.db, args.customers, args.orders_per_customer)
    asyncio.run(direct(args.db, args.lookups, args.customers))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench.screen_pop", "--serve", str(port),
                               "--db", str(args.db), "--commits", str(args.db.with_suffix(".lookup.json"))])
    try:
        wait_healthy(port)
        asyncio.run(over_http(args.db, port, server.pid, args.requests, args.customers))
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
