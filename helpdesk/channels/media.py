"""Downloading what customers send (photos, videos, audio, files on LINE, Messenger, Instagram
and WhatsApp) after the webhook answered.

A webhook only records what is to be fetched (``media_fetch``, in the transaction that ingests
the message), so it answers fast and a crash loses nothing it acknowledged. The worker here
configures the leased queue of ``helpdesk.background.queue`` (claim with a lease, backoff,
settle) for that table:

1. Due rows are claimed in one short transaction (``FOR UPDATE SKIP LOCKED`` on PostgreSQL),
   the attempt counted and ``next_attempt_at`` pushed past a lease: a process that dies while
   downloading only delays the row.
2. The content is downloaded outside any transaction, through the provider's fetcher, at most
   ``HELPDESK_MEDIA_MAX_BYTES``.
3. In one transaction: the attachment on the message and a ``message.updated`` event, and the
   row deleted. A provider that is not ready (LINE's 202 while a video is prepared) or down is
   tried again with exponential backoff; a refusal (404: gone), content over the cap or the
   last attempt leaves the placeholder text with a note saying why, and the row deleted.
"""

import asyncio
import ipaddress
import logging
import mimetypes
import socket
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.background.queue import Job, LeasedQueue, QueueOptions, TaskError
from helpdesk.channels.models import MEDIA_REFERENCE_MAX, MediaFetch
from helpdesk.config import Settings
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import InboundAttachment

log = logging.getLogger(__name__)

NOT_FETCHED = "（内容を取得できませんでした）"


def too_large_note(max_bytes: int) -> str:
    """What the message says when its content was over the cap."""
    return f"（{max_bytes / 1024 / 1024:g} MiB を超えるため保存していません）"


class FetchError(TaskError):
    """A download that failed; ``permanent`` ones are not tried again and leave ``note``."""

    def __init__(self, message: str, *, permanent: bool = False, note: str = NOT_FETCHED) -> None:
        super().__init__(message, permanent=permanent)
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
class FetchOptions(QueueOptions):
    """The queue's limits for media, and the size cap of one download."""

    max_attempts: int = 8
    backoff: timedelta = timedelta(seconds=5)
    max_backoff: timedelta = timedelta(hours=1)
    batch: int = 5
    max_bytes: int = 20 * 1024 * 1024


def pending(row: MediaFetch, attempt: int) -> Pending:
    """A claimed ``media_fetch`` row as a fetcher reads it."""
    return Pending(id=row.id or 0, message_id=row.message_id, provider=row.provider,
                   media_id=row.media_id, kind=row.kind, filename=row.filename, attempt=attempt)


@dataclass
class MediaWorker:
    """Downloads pending media through the fetcher of its provider; ``run_once`` is one pass."""

    sessionmaker: async_sessionmaker[AsyncSession]
    fetchers: Mapping[str, Fetcher]
    settings: Settings
    http: httpx.AsyncClient
    options: FetchOptions = FetchOptions()

    @cached_property
    def queue(self) -> LeasedQueue[Pending, list[InboundAttachment]]:
        # A settled row is deleted: what became of it is on the message (content or a note).
        job = Job(read=pending, work=self._download, done=self._attach, failed=self._note,
                  due=lambda: [col(MediaFetch.provider).in_(list(self.fetchers))])
        return LeasedQueue("media fetch", MediaFetch, self.sessionmaker, job, self.options)

    async def run_once(self, *, now: datetime | None = None) -> int:
        """Claim what is due and try each once; returns how many were tried."""
        return await self.queue.run_once(now=now)

    async def _download(self, item: Pending) -> list[InboundAttachment]:
        return await self.fetchers[item.provider](item, self.settings, self.http,
                                                  self.options.max_bytes)

    async def _attach(self, session: AsyncSession, item: Pending,
                      attachments: list[InboundAttachment]) -> None:
        await ticket_ingest.add_late_content(session, message_id=item.message_id,
                                             attachments=attachments, note=None)

    async def _note(self, session: AsyncSession, item: Pending, _reason: str,
                    error: Exception) -> None:
        note = error.note if isinstance(error, FetchError) else NOT_FETCHED
        await ticket_ingest.add_late_content(session, message_id=item.message_id, attachments=[],
                                             note=note)


def options_from(settings: Settings) -> FetchOptions:
    """The worker's limits as configured."""
    return FetchOptions(max_attempts=settings.media_fetch_max_attempts,
                        backoff=timedelta(seconds=settings.media_fetch_backoff_seconds),
                        max_bytes=settings.media_max_bytes)
