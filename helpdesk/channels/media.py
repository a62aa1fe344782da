"""Downloading what customers send (photos, videos, audio, files on LINE, Messenger, Instagram
and WhatsApp) after the webhook answered.

A webhook only records what is to be fetched (``media_fetch``, in the transaction that ingests
the message), so it answers fast and a crash loses nothing it acknowledged. The worker here:

1. *Claims* due rows in one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
   counting the attempt and pushing ``next_attempt_at`` past a lease: a process that dies while
   downloading only delays the row.
2. *Downloads* outside any transaction, through the provider's fetcher, at most
   ``HELPDESK_MEDIA_MAX_BYTES``.
3. *Records* in one transaction: the attachment on the message and a ``message.updated`` event,
   and the row deleted. A provider that is not ready (LINE's 202 while a video is prepared) or
   down is tried again with exponential backoff; a refusal (404: gone), content over the cap or
   the last attempt leaves the placeholder text with a note saying why, and the row deleted.
"""

import asyncio
import ipaddress
import logging
import mimetypes
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.channels.models import MEDIA_REFERENCE_MAX, MediaFetch
from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.outbox.tasks import Listen, in_background
from helpdesk.storage.sessions import dialect_of, readers_like
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import InboundAttachment

log = logging.getLogger(__name__)

NOT_FETCHED = "（内容を取得できませんでした）"


def too_large_note(max_bytes: int) -> str:
    """What the message says when its content was over the cap."""
    return f"（{max_bytes / 1024 / 1024:g} MiB を超えるため保存していません）"


class FetchError(Exception):
    """A download that failed; ``permanent`` ones are not tried again and leave ``note``."""

    def __init__(self, message: str, *, permanent: bool = False, note: str = NOT_FETCHED) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.note = note


@dataclass(frozen=True)
class Pending:
    """One claimed row, as a fetcher needs it."""

    id: int
    message_id: int
    provider: str
    media_id: str
    kind: str
    filename: str | None
    attempt: int


# A fetcher downloads one row's content (each item at most max_bytes) or raises FetchError.
Fetcher = Callable[[Pending, Settings, httpx.AsyncClient, int], Awaitable[list[InboundAttachment]]]


def enqueue(session: AsyncSession, *, message_id: int, provider: str, media_id: str, kind: str,
            filename: str | None = None) -> bool:
    """Add a download to the current transaction (the one that ingested the message).

    False, and nothing added, when the reference is too long to be kept whole: a cut one would
    only fetch the wrong thing, so the message keeps its placeholder.
    """
    if not media_id or len(media_id) > MEDIA_REFERENCE_MAX:
        log.warning("media of message %s not fetched: reference of %s characters",
                    message_id, len(media_id))
        return False
    session.add(MediaFetch(message_id=message_id, provider=provider, media_id=media_id,
                           kind=kind[:20], filename=filename[:255] if filename else None))
    return True


@dataclass(frozen=True)
class Target:
    """Where a download goes: the URL to request, and what keeps it on the checked address."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def host_allowed(host: str, allowed: Sequence[str]) -> bool:
    """Whether ``host`` is one of ``allowed`` or a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == name or host.endswith("." + name) for name in allowed)


async def public_target(url: str, *, allowed_hosts: Sequence[str]) -> Target:
    """``url`` pinned to an address it resolves to, once every such address is public.

    A URL a webhook names is the sender's choice: it must be HTTPS on port 443 of one of the
    provider's documented hosts, and no address its name resolves to may be loopback, private,
    link-local or otherwise internal. The request then goes to the address checked here (the
    name kept for the Host header and TLS), so a second lookup cannot point it elsewhere.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.scheme != "https" or parts.port not in (None, 443) or parts.username is not None \
            or not host_allowed(host, allowed_hosts):
        raise FetchError(f"not a provider's media address: {url[:100]}", permanent=True)
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, 443, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError(f"cannot resolve {host}: {exc}") from exc
    addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found]
    if not addresses or not all(_is_public(a) for a in addresses):
        raise FetchError(f"{host} resolves to an internal address", permanent=True)
    pinned = f"[{addresses[0]}]" if addresses[0].version == 6 else str(addresses[0])
    return Target(urlunsplit(parts._replace(netloc=pinned)), headers={"Host": host},
                  extensions={"sni_hostname": host})


def _is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def download(http: httpx.AsyncClient, url: str | Target, *, headers: Mapping[str, str],
                   max_bytes: int) -> tuple[bytes, str]:
    """(body, content type) of a GET, read at most ``max_bytes`` far; FetchError otherwise.

    Redirects are not followed (the shared client never does): a 3xx is a refusal.
    """
    target = url if isinstance(url, Target) else Target(url)
    try:
        async with http.stream("GET", target.url, headers={**headers, **target.headers},
                               extensions=target.extensions, follow_redirects=False) as response:
            check_status(response)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"{declared} bytes is over the cap", permanent=True,
                                 note=too_large_note(max_bytes))
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchError("over the cap", permanent=True, note=too_large_note(max_bytes))
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            return bytes(body), kind or "application/octet-stream"
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__}: {exc}") from exc


def check_status(response: httpx.Response) -> None:
    """Nothing for a 200; a FetchError saying whether trying again may help otherwise."""
    status = response.status_code
    if status == 200:
        return
    if status == 202:
        raise FetchError("202: the content is still being prepared")
    raise FetchError(f"answered {status}",
                     permanent=300 <= status < 500 and status not in (401, 403, 408, 429))


def filename_for(item: Pending, content_type: str) -> str:
    """The file's own name, or one made of the provider, its id and the type's extension."""
    if item.filename:
        return item.filename
    extension = mimetypes.guess_extension(content_type) or ""
    return f"{item.provider}-{item.kind}-{item.media_id}{extension}"


@dataclass(frozen=True)
class FetchOptions:
    max_attempts: int = 8
    backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    batch: int = 5
    poll_seconds: float = 5.0
    max_bytes: int = 20 * 1024 * 1024

    def delay(self, attempt: int) -> timedelta:
        """How long to wait after failed attempt number ``attempt`` (1, 2, 4, 8… × backoff)."""
        return min(self.backoff * (2 ** max(attempt - 1, 0)), self.max_backoff)


@dataclass
class MediaWorker:
    """Downloads pending media through the fetcher of its provider; ``run_once`` is one pass."""

    sessionmaker: async_sessionmaker[AsyncSession]
    fetchers: Mapping[str, Fetcher]
    settings: Settings
    http: httpx.AsyncClient
    options: FetchOptions = FetchOptions()

    @cached_property
    def readers(self) -> async_sessionmaker[AsyncSession]:
        return readers_like(self.sessionmaker)

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Claim what is due and try each once; returns how many were tried."""
        now = now or utcnow()
        claimed = await self._claim(now)
        for item in claimed:
            await self._fetch(item, now)
        return len(claimed)

    async def _claim(self, now: datetime) -> list[Pending]:
        due = (col(MediaFetch.next_attempt_at) <= now, col(MediaFetch.provider).in_(list(self.fetchers)))
        async with self.readers() as reader:
            if await reader.scalar(select(col(MediaFetch.id)).where(*due).limit(1)) is None:
                return []
        async with self.sessionmaker() as session:
            stmt = (select(MediaFetch).where(*due)
                    .order_by(col(MediaFetch.next_attempt_at), col(MediaFetch.id))
                    .limit(self.options.batch))
            if dialect_of(session) == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            claimed = [Pending(id=r.id or 0, message_id=r.message_id, provider=r.provider,
                               media_id=r.media_id, kind=r.kind, filename=r.filename,
                               attempt=r.attempts + 1) for r in await session.scalars(stmt)]
            if not claimed:
                return []
            await session.execute(
                update(MediaFetch).where(col(MediaFetch.id).in_([c.id for c in claimed]))
                .values(attempts=col(MediaFetch.attempts) + 1, next_attempt_at=now + self.options.lease))
            await session.commit()
        return claimed

    async def _fetch(self, item: Pending, now: datetime) -> None:
        try:
            fetched = await self.fetchers[item.provider](
                item, self.settings, self.http, self.options.max_bytes)
        except Exception as exc:  # any failure is recorded on the row and retried
            error = exc if isinstance(exc, FetchError) else FetchError(f"{type(exc).__name__}: {exc}")
            log.warning("media fetch %s (%s %s) attempt %s failed: %s",
                        item.id, item.provider, item.media_id, item.attempt, error)
            await self._record_failure(item, error, now=now)
        else:
            await self._finish(item, fetched, note=None)

    async def _record_failure(self, item: Pending, error: FetchError, *, now: datetime) -> None:
        if error.permanent or item.attempt >= self.options.max_attempts:
            await self._finish(item, [], note=error.note)
            return
        async with self.sessionmaker() as session:
            await session.execute(
                update(MediaFetch)
                .where(col(MediaFetch.id) == item.id, col(MediaFetch.attempts) == item.attempt)
                .values(last_error=str(error)[:1000],
                        next_attempt_at=now + self.options.delay(item.attempt)))
            await session.commit()

    async def _finish(self, item: Pending, attachments: list[InboundAttachment],
                      note: str | None) -> None:
        """Attach or note, and delete the row, together; unless another process took it over."""
        async with self.sessionmaker() as session:
            result = await session.execute(
                delete(MediaFetch)
                .where(col(MediaFetch.id) == item.id, col(MediaFetch.attempts) == item.attempt))
            if not result.rowcount:  # type: ignore[attr-defined]
                return
            await ticket_ingest.add_late_content(session, message_id=item.message_id,
                                           attachments=attachments, note=note)
            await session.commit()


@asynccontextmanager
async def running(*, sessionmaker: async_sessionmaker[AsyncSession], fetchers: Mapping[str, Fetcher],
                  settings: Settings, http: httpx.AsyncClient, listen: Listen) -> AsyncIterator[None]:
    """Run the worker for the app's life when ``settings.run_workers`` (tests drive it instead)."""
    if not settings.run_workers:
        yield
        return
    worker = MediaWorker(sessionmaker, fetchers, settings, http, options_from(settings))
    async with in_background(worker.run_once, listen, poll_seconds=worker.options.poll_seconds,
                             name="media fetch"):
        yield


def options_from(settings: Settings) -> FetchOptions:
    """The worker's limits as configured."""
    return FetchOptions(max_attempts=settings.media_fetch_max_attempts,
                        backoff=timedelta(seconds=settings.media_fetch_backoff_seconds),
                        max_bytes=settings.media_max_bytes)
