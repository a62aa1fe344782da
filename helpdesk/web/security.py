"""Response headers that keep pages inert (CSP without inline scripts) and the IP allow-list."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk.access import service as access
from helpdesk.config import Settings

# Provider callbacks and the customer-facing chat must stay reachable from anywhere.
PUBLIC_PREFIXES = ("/webhooks/", "/telephony/", "/api/inbound", "/chat/", "/static/", "/healthz")
TWILIO_SOURCES = "https://*.twilio.com wss://*.twilio.com"
Refuse = Callable[[Scope, Receive, Send], Awaitable[None]]


def content_security_policy(settings: Settings) -> str:
    """Scripts only from this origin (and the htmx CDN); no inline script, style or eval."""
    scripts = ["'self'"]
    cdn = urlsplit(settings.htmx_cdn_url) if settings.htmx_cdn_url else None
    if cdn and cdn.scheme and cdn.netloc:
        scripts.append(f"{cdn.scheme}://{cdn.netloc}")
    connect = ["'self'"]
    if settings.twilio_account_sid:
        connect.append(TWILIO_SOURCES)
    return "; ".join([
        "default-src 'self'", f"script-src {' '.join(scripts)}", "style-src 'self'",
        "img-src 'self' data: cid:", f"connect-src {' '.join(connect)}",
        f"media-src 'self' {TWILIO_SOURCES if settings.twilio_account_sid else ''}".rstrip(),
        "object-src 'none'", "base-uri 'none'", "form-action 'self'", "frame-ancestors 'none'",
    ])


class SecurityHeadersMiddleware:
    """Adds CSP and the usual hardening headers to every HTTP response."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", content_security_policy(settings).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", b"camera=(), geolocation=(), microphone=(self)"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name for name, _ in message.get("headers", [])}
                message.setdefault("headers", []).extend(
                    (name, value) for name, value in self.headers if name not in present)
            await send(message)

        await self.app(scope, receive, sending)


class AllowList:
    """The IP allow-list as this process knows it: loaded at start, re-read in the background
    every ``ttl`` seconds (other workers may have changed it), at once after a change here.

    Requests never wait for the database: a stale list is used while a fresh one is read.
    """

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.networks: list[access.Network] = []
        self.loaded_at = -1e9
        self._refreshing: asyncio.Task[None] | None = None

    async def load(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Read the list now (``sessionmaker`` makes read sessions: this must never queue for,
        or hold, SQLite's write lock, and may run while the caller holds a write session)."""
        async with sessionmaker() as session:
            self.networks = await access.networks(session)
        self.loaded_at = time.monotonic()

    def refresh_if_stale(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        """Start a background read when the list is older than ``ttl``."""
        if time.monotonic() - self.loaded_at < self.ttl:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self.load(sessionmaker))


class IpAllowMiddleware:
    """Refuses staff pages, the staff API and /ws to addresses outside the allow-list."""

    def __init__(self, app: ASGIApp, *, refuse: Refuse) -> None:
        self.app = app
        self.refuse = refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or admitted(scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await refuse_socket(send)
            return
        await self.refuse(scope, receive, send)


def admitted(scope: Scope) -> bool:
    """Whether the allow-list lets the client in (public paths let everyone in)."""
    if scope["path"].startswith(PUBLIC_PREFIXES):
        return True
    state = scope["app"].state
    allow_list: AllowList = state.allow_list
    allow_list.refresh_if_stale(state.read_sessionmaker)
    client = scope.get("client")
    return access.allows(allow_list.networks, client[0] if client else None)


async def refuse_socket(send: Send) -> None:
    """Close a socket from an address outside the allow-list before it is accepted."""
    await send({"type": "websocket.close", "code": 4403})
