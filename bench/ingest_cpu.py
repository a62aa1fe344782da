"""Ingest's CPU and statements a message, in one process through the ASGI app (no sockets).

    .venv/bin/python -m bench.ingest_cpu [--messages 400] [--profile] [--database-url URL]

Run it from another checkout (``cd OTHER && OTHER/.venv/bin/python -m bench.ingest_cpu``, with
this file copied there if it lacks it) to compare two versions; alternate them on a shared host.
Posts ``--messages`` new customers' messages one after another through httpx's ASGI transport
after 20 warm-up ones, and prints the process CPU a message (client included), p50/p99 latency,
throughput, RSS, and the statements a message with the commonest of them (``*``: run on the
PostgreSQL driver directly). ``--profile``: a
cProfile of the run on CPU time (it inflates ORM-heavy code several times: read the shares).
``--database-url``: an empty PostgreSQL database (migrated here) instead of a new SQLite file;
the database's own CPU is not in the figure (``bench/scaleout.py`` reports it).
"""

import argparse
import asyncio
import collections
import cProfile
import os
import pstats
import tempfile
import time
from typing import Any

import httpx
from sqlalchemy import event

from bench.stats import rss_mib, summary
from helpdesk.app import create_app
from helpdesk.migrations import run_upgrade
from tests.support.server import INBOUND_TOKEN, make_settings


async def run(url: str, count: int, profile: bool) -> None:
    app = create_app(make_settings(url))
    async with app.router.lifespan_context(app):
        statements: collections.Counter[str] = collections.Counter()

        def counted(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
            # No cursor: run on the driver directly (storage.prepared, storage.postgres).
            statements[("   " if cursor is not None else " * ") + statement.split("\n")[0][:100]] += 1

        event.listen(app.state.engine.sync_engine, "before_cursor_execute", counted)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
            async def post(i: int) -> None:
                response = await client.post("/api/inbound", headers={
                    "Authorization": f"Bearer {INBOUND_TOKEN}", "Idempotency-Key": f"k{i}"}, json={
                    "channel": "api", "external_id": f"conv-{i}", "body": f"返品の件 {i}",
                    "from": {"name": f"顧客 {i}", "email": f"c{i}@example.jp", "phone": f"090{i:08d}"}})
                assert response.status_code == 201, response.text

            for i in range(-20, 0):
                await post(i)
            statements.clear()
            profiler = cProfile.Profile(time.process_time)
            latencies = []
            cpu, started = time.process_time(), time.perf_counter()
            if profile:
                profiler.enable()
            for i in range(count):
                began = time.perf_counter()
                await post(i)
                latencies.append(time.perf_counter() - began)
            profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - started
    print(summary("POST /api/inbound in process, one at a time", latencies, wall))
    print(f"CPU a message: {cpu / count * 1000:.2f} ms (client included); RSS {rss_mib(os.getpid()):.0f} MiB")
    print(f"statements a message: {sum(statements.values()) / count:.1f}")
    for statement, n in statements.most_common(25):
        print(f"  {n / count:5.2f}  {statement}")
    if profile:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ingest-cpu-", dir="/tmp") as folder:
        url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        run_upgrade(url)
        asyncio.run(run(url, args.messages, args.profile))


if __name__ == "__main__":
    main()
