"""How the channels plug into the app: their routes, their senders, their listeners, and how
each provider's media is fetched."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.channels import api as api_channel
from helpdesk.channels import media
from helpdesk.channels.chat import api as chat_api
from helpdesk.channels.chat import service as chat
from helpdesk.channels.email import api as email_api
from helpdesk.channels.email import tasks as email
from helpdesk.channels.line import api as line_api
from helpdesk.channels.line import service as line
from helpdesk.channels.meta import api as meta_api
from helpdesk.channels.meta import payloads as meta_payloads
from helpdesk.channels.meta import service as meta
from helpdesk.config import Settings
from helpdesk.outbox.service import SenderRegistry

ROUTERS: list[APIRouter] = [email_api.router, line_api.router, meta_api.router, chat_api.router]
# How each provider's media (queued in media_fetch by its webhook) is downloaded.
FETCHERS: dict[str, media.Fetcher] = {"line": line.fetch_content, meta_payloads.PROVIDER: meta.fetch_content}


def register_senders(registry: SenderRegistry, sessionmaker: async_sessionmaker[AsyncSession],
                     settings: Settings) -> None:
    """Tell the outbox how replies leave on each channel this package speaks.

    A channel whose provider is not configured gets the reason instead of a sender, and a reply
    on it is refused when written (SMS and WhatsApp through Twilio are registered by telephony/).
    """
    if settings.smtp_url:
        registry.register("reply.email", email.send_reply)
    else:
        registry.refuse("reply.email", "outgoing mail is not set up (HELPDESK_SMTP_URL)")
    if settings.line_channel_access_token:
        registry.register("reply.line", line.send_push)
    else:
        registry.refuse("reply.line", "LINE is not set up (HELPDESK_LINE_CHANNEL_ACCESS_TOKEN)")
    if settings.meta_access_token:
        registry.register("reply.messenger", meta.send_message)
        registry.register("reply.instagram", meta.send_message)
        registry.register("reply.whatsapp", meta.send_message, when=meta.is_cloud_whatsapp)
    else:
        for kind in ("reply.messenger", "reply.instagram", "reply.whatsapp"):
            registry.refuse(kind, "Meta is not set up (HELPDESK_META_ACCESS_TOKEN)")
    registry.register("reply.chat", chat.make_sender(sessionmaker))
    # The system that posted to /api/inbound reads the replies from GET /api/tickets/{id}.
    registry.register("reply.api", api_channel.publish_reply)
    registry.refuse("reply.phone", "a phone ticket is answered by calling back or by SMS")


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The chat hub and the SMTP listener, for the app's life (IMAP polling and media downloads
    are background jobs, started with the others by ``helpdesk.app.background_work``)."""
    settings: Settings = app.state.settings
    sessionmaker = app.state.sessionmaker
    hub = chat.ChatHub(sessionmaker, app.state.read_sessionmaker)
    await hub.start(app.state.bus.listen)
    app.state.chat_hub = hub
    server = await email.start_smtp_listener(sessionmaker, settings) if settings.smtp_listen else None
    try:
        yield
    finally:
        if server is not None:
            server.close()
            await server.wait_closed()
        await hub.stop()
