"""Channels benchmark: email parsing, inbound email over HTTP, and outbox delivery to LINE.

    .venv/bin/python -m bench.channels [--messages 300] [--concurrency 8]

SQLite in a temporary directory unless HELPDESK_TEST_DATABASE_URL names another database.
Prints p50/p99 latency, throughput and peak memory (RSS).
"""

import argparse
import asyncio
import resource
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text

from helpdesk.channels import wiring
from helpdesk.channels.email import service as mail
from helpdesk.db import create_engine
from helpdesk.delivery.tasks import OutboxWorker
from helpdesk.inboxes import service as inbox_service
from helpdesk.migrations import run_upgrade
from helpdesk.outbox.service import SenderRegistry
from helpdesk.realtime.log import event_sessions
from tests.support.channels import LINE_TOKEN, line_message, post_line
from tests.support.database import reset
from tests.support.fakes import FakeLine
from tests.support.inbound import INBOUND_HEADERS
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff

CORPUS = sorted((Path(__file__).resolve().parent.parent / "tests" / "data" / "mail").glob("*.eml"))


def report(name: str, samples: list[float], elapsed: float) -> None:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{name:<34} n={len(samples):>5}  p50={statistics.median(ordered) * 1000:7.2f} ms  "
          f"p99={p99 * 1000:7.2f} ms  {len(samples) / elapsed:8.0f}/s  peak RSS {rss:.0f} MiB")


def bench_parse(rounds: int) -> None:
    raws = [p.read_bytes() for p in CORPUS]
    samples = []
    start = time.perf_counter()
    for _ in range(rounds):
        for raw in raws:
            t = time.perf_counter()
            mail.parse(raw)
            samples.append(time.perf_counter() - t)
    report("parse corpus mail", samples, time.perf_counter() - start)


async def timed_all(calls: list, concurrency: int) -> tuple[list[float], float]:  # type: ignore[type-arg]
    gate = asyncio.Semaphore(concurrency)
    samples: list[float] = []

    async def one(call):  # type: ignore[no-untyped-def]
        async with gate:
            t = time.perf_counter()
            response = await call()
            assert response.status_code < 300, response.text
            samples.append(time.perf_counter() - t)

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in calls))
    return samples, time.perf_counter() - start


async def main(messages: int, concurrency: int, database_url: str) -> None:
    bench_parse(max(1, messages // len(CORPUS)))
    await asyncio.to_thread(run_upgrade, database_url)
    engine = create_engine(database_url)
    await reset(engine)
    template = (CORPUS[0]).read_bytes()
    with FakeLine(LINE_TOKEN) as line:
        settings = make_settings(database_url, line_channel_secret="line-channel-secret-for-tests",
                                 line_channel_access_token=LINE_TOKEN, line_api_base=line.url)
        with LiveServer(settings) as server:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
                calls = [lambda i=i: client.post(
                    "/webhooks/email", headers=INBOUND_HEADERS,
                    content=template.replace(b"Message-ID: <", f"Message-ID: <bench{i}.".encode()))
                    for i in range(messages)]
                report("POST /webhooks/email (ingest)", *await timed_all(calls, concurrency))
                calls = [lambda i=i: post_line(client, line_message(
                    f"質問 {i}", event_id=f"B{i}", user_id=f"U{i:032d}")) for i in range(messages)]
                report("POST /webhooks/line (ingest)", *await timed_all(calls, concurrency))
                async with event_sessions(engine)() as session:
                    from helpdesk.auth import service as auth
                    user = await auth.create_user(session, email="b@example.com", name="b",
                                                  role="operator", password="x" * 12)
                    assert user.id is not None
                    await inbox_service.join_named(session, user_id=user.id, names=["default"])
                    await session.commit()
                headers = Staff.headers(user)
                async with engine.connect() as conn:
                    ids = [r[0] for r in (await conn.execute(
                        text("SELECT id, version FROM ticket WHERE channel = 'line'"))).all()]
                calls = [lambda t=t: client.post(f"/api/tickets/{t}/messages", headers=headers,
                                                 json={"body": "ご連絡ありがとうございます。", "version": 2})
                         for t in ids]
                await timed_all(calls, concurrency)
            registry = SenderRegistry()
            sessionmaker = event_sessions(engine)
            wiring.register_senders(registry, sessionmaker, settings)
            async with httpx.AsyncClient(timeout=10) as http:
                worker = OutboxWorker(sessionmaker, registry, settings, http)
                start = time.perf_counter()
                samples = []
                while True:
                    t = time.perf_counter()
                    done = await worker.run_once()
                    if not done:
                        break
                    samples.extend([(time.perf_counter() - t) / done] * done)
                report("outbox → LINE push (per message)", samples, time.perf_counter() - start)
            assert len(line.pushed) == len(ids)
    await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    import os

    url = os.environ.get("HELPDESK_TEST_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/bench.db")
    asyncio.run(main(args.messages, args.concurrency, url))
