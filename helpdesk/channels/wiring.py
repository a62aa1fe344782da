"""How the channels plug into the app: their routes, their senders, their background work."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.channels import media
from helpdesk.channels.chat import api as chat_api
from helpdesk.channels.chat import service as chat
from helpdesk.channels.email import api as email_api
from helpdesk.channels.email import tasks as email
from helpdesk.channels.line import api as line_api
from helpdesk.channels.line import service as line
from helpdesk.channels.meta import api as meta_api
from helpdesk.channels.meta import service as meta
from helpdesk.config import Settings
from helpdesk.outbox.service import SenderRegistry

ROUTERS: list[APIRouter] = [email_api.router, line_api.router, meta_api.router, chat_api.router]
# How each provider's media (queued in media_fetch by its webhook) is downloaded.
FETCHERS: dict[str, media.Fetcher] = {"line": line.fetch_content, meta.PROVIDER: meta.fetch_content}


def register_senders(registry: SenderRegistry,
                     sessionmaker: async_sessionmaker[AsyncSession]) -> None:
    """Tell the outbox how replies leave on each channel this package speaks."""
    registry.register("reply.email", email.send_reply)
    registry.register("reply.line", line.send_push)
    registry.register("reply.messenger", meta.send_message)
    registry.register("reply.instagram", meta.send_message)
    registry.register("reply.whatsapp", meta.send_message, when=meta.is_cloud_whatsapp)
    registry.register("reply.chat", chat.make_sender(sessionmaker))


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The chat hub, the SMTP listener, IMAP polling and media downloads, for the app's life."""
    settings: Settings = app.state.settings
    sessionmaker = app.state.sessionmaker
    hub = chat.ChatHub(sessionmaker, app.state.read_sessionmaker)
    await hub.start(app.state.bus.listen)
    app.state.chat_hub = hub
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    server = await email.start_smtp_listener(sessionmaker, settings) if settings.smtp_listen else None
    if settings.imap_url and settings.run_workers:
        tasks.append(asyncio.create_task(email.run_imap_poller(sessionmaker, settings, stop)))
    try:
        async with media.running(sessionmaker=sessionmaker, fetchers=FETCHERS, settings=settings,
                                 http=app.state.http, listen=app.state.bus.listen):
            yield
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            server.close()
            await server.wait_closed()
        await hub.stop()
