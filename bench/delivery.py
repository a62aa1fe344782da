"""Delivery worker benchmark: replies on the API channel delivered from the outbox.

    .venv/bin/python -m bench.delivery [--replies 500] [--db /tmp/bench-delivery.db]

The API channel's sender only marks a reply sent (the system that posted the message reads it
back), so what is measured is the leased queue and the delivery around it: the claim, the
sender's context, the settlement with the message's status and its event. SQLite in the file
given by --db (emptied first) unless HELPDESK_TEST_DATABASE_URL names another database.
Prints p50/p99 per reply, throughput, process CPU and statements per reply, and peak RSS.
"""

import argparse
import asyncio
import os
import resource
import time
from typing import Any

import httpx
from sqlalchemy import event

from bench.stats import summary
from helpdesk.auth import service as auth
from helpdesk.channels import wiring
from helpdesk.db import create_engine
from helpdesk.delivery.tasks import OutboxWorker
from helpdesk.inboxes import service as inbox_service
from helpdesk.migrations import run_upgrade
from helpdesk.outbox.service import SenderRegistry
from helpdesk.realtime.log import event_sessions
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Ticket
from tests.support.database import reset
from tests.support.inbound import inbound
from tests.support.server import make_settings


async def arrange(sessions: Any, replies: int) -> None:
    """``replies`` API tickets, each with one operator reply queued in the outbox."""
    async with sessions() as session:
        user = await auth.create_user(session, email="bench@example.com", name="bench",
                                      role="operator", password="x" * 12)
        assert user.id is not None
        await inbox_service.join_named(session, user_id=user.id, names=["default"])
        await session.commit()
    for n in range(replies):
        async with sessions() as session:
            result = await inbound(session, f"bench-delivery-{n}", email=f"c{n}@example.jp",
                                   body=f"質問 {n}")
            ticket = await session.get(Ticket, result.ticket_id)
            assert ticket is not None
            await tickets.reply(session, ticket, body="ご連絡ありがとうございます。", internal=False,
                                actor=user)
            await session.commit()


async def main(replies: int, database_url: str) -> None:
    await asyncio.to_thread(run_upgrade, database_url)
    engine = create_engine(database_url)
    await reset(engine)
    sessions = event_sessions(engine)
    await arrange(sessions, replies)
    settings = make_settings(database_url)
    registry = SenderRegistry()
    wiring.register_senders(registry, sessions, settings)
    statements = 0

    def count(*_: object) -> None:
        nonlocal statements
        statements += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    async with httpx.AsyncClient() as http:
        worker = OutboxWorker(sessions, registry, settings, http)
        samples: list[float] = []
        cpu, start = time.process_time(), time.perf_counter()
        while True:
            began = time.perf_counter()
            done = await worker.run_once()
            if not done:
                break
            samples.extend([(time.perf_counter() - began) / done] * done)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    await engine.dispose()
    assert len(samples) == replies, len(samples)
    print(summary("outbox → API channel, per reply", samples, wall))
    print(f"process CPU {cpu / replies * 1000:.2f} ms/reply, {statements / replies:.1f} "
          f"statements/reply, peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--replies", type=int, default=500)
    parser.add_argument("--db", default="/tmp/bench-delivery.db")
    args = parser.parse_args()
    url = os.environ.get("HELPDESK_TEST_DATABASE_URL") or f"sqlite+aiosqlite:///{args.db}"
    asyncio.run(main(args.replies, url))
