"""Every provider configured and pointed at local stubs of it: LINE, Meta, SMTP; the fixtures
that start them, the server that uses them, the workers a test drives one pass at a time, and
what a provider's webhook call looks like."""

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.channels import wiring
from helpdesk.channels.media import FetchOptions, MediaWorker
from helpdesk.config import Settings
from helpdesk.delivery.tasks import OutboxWorker, WorkerOptions
from helpdesk.outbox.service import SenderRegistry
from helpdesk.realtime.log import event_sessions
from telephony import sms
from tests.support.fakes import FakeLine, FakeLineData, FakeMeta, FakeSMTP
from tests.support.server import LiveServer, free_port, make_settings
from tests.support.staff import Staff

LINE_SECRET = "line-channel-secret-for-tests"
LINE_TOKEN = "line-channel-access-token"
META_SECRET = "meta-app-secret-for-tests"
META_VERIFY = "meta-verify-token"
META_TOKEN = "meta-page-access-token"


@pytest.fixture(scope="session")
def fake_line() -> Iterator[FakeLine]:
    with FakeLine(LINE_TOKEN) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="session")
def fake_line_data() -> Iterator[FakeLineData]:
    with FakeLineData(LINE_TOKEN) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="session")
def fake_meta() -> Iterator[FakeMeta]:
    with FakeMeta(META_TOKEN) as fake:
        yield fake  # type: ignore[misc]


@pytest.fixture(scope="session")
def fake_smtp() -> Iterator[FakeSMTP]:
    with FakeSMTP() as fake:
        yield fake


@pytest.fixture(autouse=True)
def _clean_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("fake_line", "fake_line_data", "fake_meta", "fake_smtp"):
        if name in request.fixturenames:
            fake = request.getfixturevalue(name)
            fake.fail_next = 0
            for attr in ("requests", "pushed", "sent", "messages", "contents", "profiles", "cdn",
                         "media"):
                if hasattr(fake, attr):
                    getattr(fake, attr).clear()
            if hasattr(fake, "accepted_keys"):
                fake.accepted_keys.clear()
                fake.lose_response_next = fake.reject_next = 0


def channel_settings(database_url: str, fake_line: FakeLine, fake_meta: FakeMeta,
                     fake_smtp: FakeSMTP, fake_line_data: FakeLineData,
                     **overrides: object) -> Settings:
    values: dict[str, object] = {
        "line_channel_secret": LINE_SECRET, "line_channel_access_token": LINE_TOKEN,
        "line_api_base": fake_line.url, "line_data_api_base": fake_line_data.url,
        "meta_app_secret": META_SECRET,
        "meta_verify_token": META_VERIFY, "meta_access_token": META_TOKEN,
        "meta_api_base": fake_meta.url, "smtp_url": f"smtp://127.0.0.1:{fake_smtp.port}",
        "mail_from": "support@shop.example",
    }
    values.update(overrides)
    return make_settings(database_url, **values)


@pytest.fixture(scope="session")
def channel_server(database_url: str, fake_line: FakeLine, fake_meta: FakeMeta,
                   fake_smtp: FakeSMTP, fake_line_data: FakeLineData) -> Iterator[LiveServer]:
    """Every provider configured; workers off, so tests drive the outbox themselves."""
    with LiveServer(channel_settings(database_url, fake_line, fake_meta, fake_smtp,
                                     fake_line_data)) as live:
        yield live


@pytest.fixture
async def chttp(channel_server: LiveServer, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=channel_server.url, timeout=30) as client:
        yield client


@pytest.fixture
async def live_server(database_url: str, fake_line: FakeLine, fake_meta: FakeMeta,
                      fake_smtp: FakeSMTP, fake_line_data: FakeLineData,
                      engine: AsyncEngine) -> AsyncIterator[LiveServer]:
    """A server running its own workers and SMTP listener, as in production (one per test)."""
    settings = channel_settings(database_url, fake_line, fake_meta, fake_smtp, fake_line_data,
                                run_workers=True, smtp_listen=f"127.0.0.1:{free_port()}",
                                outbox_backoff_seconds=0.2, media_fetch_backoff_seconds=0.2)
    live = LiveServer(settings)
    await asyncio.to_thread(live.__enter__)
    try:
        yield live
    finally:
        await asyncio.to_thread(live.__exit__, None, None, None)


@pytest.fixture
async def worker(engine: AsyncEngine, channel_server: LiveServer) -> AsyncIterator[OutboxWorker]:
    """The outbox worker, driven by the test one pass at a time."""
    sessionmaker = event_sessions(engine)
    registry = SenderRegistry()
    wiring.register_senders(registry, sessionmaker, channel_server.settings)
    sms.register_senders(registry, channel_server.settings)  # as the app does
    async with httpx.AsyncClient(timeout=10) as client:
        yield OutboxWorker(sessionmaker, registry, channel_server.settings, client,
                           WorkerOptions(max_attempts=3, backoff=timedelta(seconds=10)))


@pytest.fixture
async def media_worker(engine: AsyncEngine, channel_server: LiveServer) -> AsyncIterator[MediaWorker]:
    """The media download worker, driven by the test one pass at a time."""
    sessionmaker = event_sessions(engine)
    async with httpx.AsyncClient(timeout=10) as client:
        yield MediaWorker(sessionmaker, wiring.FETCHERS, channel_server.settings, client,
                          FetchOptions(max_attempts=3, backoff=timedelta(seconds=10),
                                       max_bytes=1024 * 1024))


@pytest.fixture
async def operator(staff: Staff) -> dict[str, str]:
    """Authorization headers of an operator in the default inbox."""
    return Staff.headers(await staff.create("sato", inboxes=["default"]))


def line_signature(body: bytes, secret: str = LINE_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def meta_signature(body: bytes, secret: str = META_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


async def post_line(client: httpx.AsyncClient, payload: dict[str, Any],
                    signature: str | None = None) -> httpx.Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return await client.post("/webhooks/line", content=body, headers={
        "Content-Type": "application/json",
        "X-Line-Signature": signature if signature is not None else line_signature(body)})


async def post_meta(client: httpx.AsyncClient, payload: dict[str, Any],
                    signature: str | None = None) -> httpx.Response:
    body = json.dumps(payload, ensure_ascii=False).encode()
    return await client.post("/webhooks/meta", content=body, headers={
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature if signature is not None else meta_signature(body)})


def line_message(text: str, *, event_id: str = "01HZX0000000000000000000AA", user_id: str = "U" + "a" * 32,
                 message_id: str = "468789577898262530") -> dict[str, Any]:
    """A LINE webhook body with one text message event, as the platform sends it."""
    return {"destination": "U" + "f" * 32, "events": [{
        "type": "message", "mode": "active", "timestamp": 1714525200000,
        "source": {"type": "user", "userId": user_id}, "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False}, "replyToken": "b60d432864f44d079f6d8efe86cf404b",
        "message": {"id": message_id, "type": "text", "quoteToken": "q3Plxr4AgKd", "text": text},
    }]}


async def reply(client: httpx.AsyncClient, headers: dict[str, str], ticket_id: int,
                body: str) -> dict[str, Any]:
    """An operator's reply through the API (with the ticket's current version)."""
    ticket = (await client.get(f"/api/tickets/{ticket_id}", headers=headers)).json()
    response = await client.post(f"/api/tickets/{ticket_id}/messages", headers=headers,
                                 json={"body": body, "version": ticket["version"]})
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


