"""Finding 11: a media URL in a Messenger / Instagram webhook may only lead to Meta's media hosts on
public addresses: never to a port inside the network, whatever name or address it gives."""

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.channels import media, wiring
from helpdesk.channels.media import FetchOptions, MediaWorker
from helpdesk.channels.models import MediaFetch
from helpdesk.realtime.log import event_sessions
from helpdesk.tickets.models import Message
from tests.channels.test_meta_media import image, messenger_attachments
from tests.support.channels import post_meta
from tests.support.database import count, fetch
from tests.support.server import LiveServer


class Listener:
    """A TCP port inside the network that counts who connects to it."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> "Listener":
        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


@pytest.fixture
async def internal() -> AsyncIterator[Listener]:
    async with Listener() as listener:
        yield listener


@pytest.fixture
async def trusting_worker(engine: AsyncEngine, channel_server: LiveServer) -> AsyncIterator[MediaWorker]:
    """A media worker whose settings also allow "localhost" as a media host name: the name
    passes, and only the check of what it resolves to can stop the download."""
    settings = channel_server.settings.model_copy(update={
        "meta_media_hosts": [*getattr(channel_server.settings, "meta_media_hosts", []), "localhost"]})
    async with httpx.AsyncClient(timeout=5) as client:
        yield MediaWorker(event_sessions(engine), wiring.FETCHERS, settings, client,
                          FetchOptions(max_attempts=3, backoff=timedelta(seconds=10), max_bytes=1024))


@pytest.mark.parametrize("address", [
    "https://127.0.0.1:{port}/x.jpg", "https://localhost:{port}/x.jpg", "https://[::1]:{port}/x.jpg",
    "https://scontent.fbcdn.net.127.0.0.1.nip.io:{port}/x.jpg", "http://127.0.0.1:{port}/x.jpg",
    "https://user@scontent.fbcdn.net:{port}/x.jpg"])
async def test_attachment_urls_never_reach_an_internal_port(
        chttp: httpx.AsyncClient, db: AsyncSession, internal: Listener,
        trusting_worker: MediaWorker, address: str) -> None:
    url = address.format(port=internal.port)
    response = await post_meta(chttp, messenger_attachments("m_SSRF", [image(url)]))
    assert response.status_code == 200
    assert await trusting_worker.run_once() == 1
    await asyncio.sleep(0.1)  # a connection, had one been made, reaches the listener's thread
    assert internal.connections == 0
    assert await count(db, MediaFetch) == 0  # refused for good, not retried
    message = (await fetch(db, select(Message)))[0]
    assert media.NOT_FETCHED in message.body_text


async def test_a_meta_host_name_resolving_inside_is_refused_before_connecting() -> None:
    with pytest.raises(media.FetchError, match="internal address") as refused:
        await media.public_target("https://localhost/x.jpg", allowed_hosts=["localhost"])
    assert refused.value.permanent
    with pytest.raises(media.FetchError, match="not a provider"):
        await media.public_target("https://evil.example/x.jpg", allowed_hosts=["fbcdn.net"])
    assert media.host_allowed("scontent-nrt1-1.xx.fbcdn.net", ["fbcdn.net"])
    assert not media.host_allowed("fbcdn.net.evil.example", ["fbcdn.net"])
    assert not media.host_allowed("evilfbcdn.net", ["fbcdn.net"])


async def test_a_redirect_is_a_refusal_not_followed() -> None:
    response = httpx.Response(302, headers={"Location": "http://127.0.0.1/"})
    with pytest.raises(media.FetchError) as refused:
        media.check_status(response)
    assert refused.value.permanent
