"""A server killed with SIGKILL in the middle of a stream of deliveries loses none it answered."""

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.tickets.models import Message
from tests.support import ROOT
from tests.support.inbound import post_inbound
from tests.support.server import INBOUND_TOKEN, SECRET, free_port
from tests.support.waiting import wait_until

CLIENTS = 16


@pytest.fixture
def server_process(database_url: str, db: AsyncSession) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``helpdesk serve`` as a process of its own, on the (emptied) test database."""
    port = free_port()
    env = {**os.environ, "HELPDESK_DATABASE_URL": database_url, "HELPDESK_SECRET_KEY": SECRET,
           "HELPDESK_INBOUND_TOKEN": INBOUND_TOKEN, "HELPDESK_RUN_WORKERS": "false"}
    env.pop("HELPDESK_REDIS_URL", None)
    process = subprocess.Popen([sys.executable, "-m", "helpdesk.cli", "serve", "--port", str(port)],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


async def test_every_acknowledged_message_survives_a_kill_9(
        server_process: tuple[subprocess.Popen[bytes], str], db: AsyncSession) -> None:
    process, url = server_process
    acknowledged: dict[str, int] = {}  # body → message id

    async def healthy() -> bool:
        try:
            return (await http.get("/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    async def deliver(client: int) -> None:
        for n in range(10_000):
            body = f"{client}-{n} 返品①　ｶﾀｶﾅ"
            try:
                response = await post_inbound(http, f"kill-{client}-{n}", {
                    "channel": "api", "body": body,
                    "from": {"name": f"顧客 {client}", "email": f"k{client}.{n}@example.jp"}})
            except httpx.TransportError:
                return  # the server is gone: this delivery was never answered
            assert response.status_code == 201, response.text
            acknowledged[body] = response.json()["message_id"]

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        await wait_until(healthy, within=60)
        senders = [asyncio.create_task(deliver(n)) for n in range(CLIENTS)]
        await wait_until(lambda: len(acknowledged) >= 60, within=120)
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.gather(*senders)
    await db.rollback()
    stored = {row.body_text: row.id for row in await db.execute(select(Message.body_text, Message.id))}
    assert len(acknowledged) >= 60
    missing = {body: id_ for body, id_ in acknowledged.items() if stored.get(body) != id_}
    assert not missing, f"{len(missing)} of {len(acknowledged)} answered messages were lost"
