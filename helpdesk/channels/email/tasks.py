"""Email's background work: the built-in SMTP listener, IMAP polling, and sending replies."""

import asyncio
import contextlib
import functools
import imaplib
import logging
import re
import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import aiosmtplib
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.channels.email import compose as mail_compose
from helpdesk.channels.email import service
from helpdesk.channels.models import ImapCursor
from helpdesk.config import Settings
from helpdesk.db import utcnow
from helpdesk.errors import HelpdeskError
from helpdesk.outbox.service import OutboundContext, SendError
from helpdesk.storage.locks import serialize_on

log = logging.getLogger(__name__)


# ---- sending ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpTarget:
    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool | None


def smtp_target(url: str) -> SmtpTarget:
    """``smtp://user:pass@host:587`` (STARTTLS when offered), ``smtps://…:465``, or
    ``smtp+starttls://…`` (STARTTLS required)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        raise SendError(f"SMTP_URL must be smtp://, smtps:// or smtp+starttls://, not {scheme}://",
                        permanent=True)
    return SmtpTarget(
        hostname=parts.hostname, port=parts.port or (465 if scheme == "smtps" else 587),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_tls=scheme == "smtps", start_tls=True if scheme == "smtp+starttls" else None,
    )


async def send_reply(context: OutboundContext) -> str:
    """Send an operator's reply by email; returns its Message-ID (stored to thread answers)."""
    settings = context.settings
    if not settings.smtp_url:
        raise SendError("SMTP_URL is not configured")
    emails = context.identities.get("email", [])
    if not emails:
        raise SendError("the customer has no email address", permanent=True)
    # The standard library writes a message line by line, slowly for megabytes of files: that
    # runs in a thread, so the event loop keeps serving pages and sockets meanwhile.
    compose = functools.partial(
        mail_compose.compose_reply, message_id=context.message_id, ticket_number=context.ticket_number,
        ticket_subject=context.ticket_subject, token=context.ticket_token,
        body_text=context.body_text, author=context.author, to_email=emails[0],
        to_name=context.customer_name, inbox_email=context.inbox_email,
        fallback_from=settings.mail_from, charset_name=context.inbox_email_charset,
        in_reply_to=context.reply_to_external_id, references=context.thread_external_ids,
        now=utcnow(), cc=context.cc, bcc=context.bcc, files=context.files,
    )
    mail = await asyncio.to_thread(compose) if context.files else compose()
    target = smtp_target(settings.smtp_url)
    try:
        await aiosmtplib.send(
            mail.raw, sender=mail.sender, recipients=mail.recipients, hostname=target.hostname,
            port=target.port, username=target.username, password=target.password,
            use_tls=target.use_tls, start_tls=target.start_tls, timeout=30,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        raise SendError(f"recipient refused: {exc}", permanent=True) from exc
    except aiosmtplib.SMTPResponseException as exc:
        raise SendError(f"SMTP {exc.code}: {exc.message}", permanent=exc.code >= 500) from exc
    return mail.message_id


# ---- the built-in SMTP listener -------------------------------------------------------------


class InboundHandler:
    """aiosmtpd handler: every accepted message is ingested and committed before 250."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        if not isinstance(raw, bytes):
            raw = str(raw or "").encode("utf-8", "surrogateescape")
        try:
            async with self.sessionmaker() as db:
                await service.ingest_raw(db, raw, settings=self.settings,
                                         envelope_recipients=list(envelope.rcpt_tos))
                await db.commit()
        except HelpdeskError as exc:
            return f"550 5.6.0 {exc.message}"
        except Exception:  # the sender will retry later; nothing was committed
            log.exception("inbound SMTP message failed")
            return "451 4.3.0 temporary failure, try again later"
        return "250 2.0.0 OK: queued"


def listen_address(value: str) -> tuple[str, int]:
    """``host:port`` of SMTP_LISTEN."""
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


async def start_smtp_listener(sessionmaker: async_sessionmaker[AsyncSession],
                              settings: Settings) -> asyncio.Server:
    """Serve SMTP on ``SMTP_LISTEN`` in this event loop (several processes share the port)."""
    assert settings.smtp_listen
    host, port = listen_address(settings.smtp_listen)
    handler = InboundHandler(sessionmaker, settings)
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: SMTP(handler, data_size_limit=settings.max_body_bytes, enable_SMTPUTF8=True,
                     ident="helpdesk"),
        host=host, port=port, reuse_port=True,
    )


# ---- IMAP polling ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ImapSource:
    host: str
    port: int
    use_ssl: bool
    user: str
    password: str
    folder: str

    @property
    def key(self) -> str:
        return f"{self.user}@{self.host}:{self.port}/{self.folder}"[:255]


def imap_source(url: str) -> ImapSource:
    """``imaps://user:pass@host:993/INBOX`` or ``imap://…:143/Folder``."""
    parts = urlsplit(url)
    if parts.scheme not in ("imap", "imaps") or not parts.hostname:
        raise ValueError("IMAP_URL must be imap:// or imaps://")
    use_ssl = parts.scheme == "imaps"
    return ImapSource(
        host=parts.hostname, port=parts.port or (993 if use_ssl else 143), use_ssl=use_ssl,
        user=unquote(parts.username or ""), password=unquote(parts.password or ""),
        folder=unquote(parts.path.lstrip("/")) or "INBOX",
    )


class ImapMailbox:
    """A blocking imaplib connection, driven from a worker thread one call at a time."""

    def __init__(self, source: ImapSource) -> None:
        self.source = source
        self.conn: imaplib.IMAP4 | None = None
        self.uid_validity = 0

    def open(self) -> None:
        src = self.source
        self.conn = (imaplib.IMAP4_SSL(src.host, src.port, ssl_context=ssl.create_default_context(),
                                       timeout=30)
                     if src.use_ssl else imaplib.IMAP4(src.host, src.port, timeout=30))
        self.conn.login(src.user, src.password)
        status, _ = self.conn.select(_quote(src.folder))
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot select {src.folder}")
        _, data = self.conn.response("UIDVALIDITY")
        self.uid_validity = int(data[0]) if data and data[0] else 0

    def uids_after(self, last_uid: int) -> list[int]:
        assert self.conn is not None
        status, data = self.conn.uid("SEARCH", f"UID {last_uid + 1}:*")
        if status != "OK":
            raise imaplib.IMAP4.error("UID SEARCH failed")
        found = [int(u) for u in b" ".join(d for d in data if d).split()]
        return sorted(u for u in found if u > last_uid)  # "n:*" also matches the highest UID

    def fetch(self, uid: int) -> bytes | None:
        assert self.conn is not None
        status, data = self.conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
        if status != "OK":
            return None
        for item in data:
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def mark_seen(self, uid: int) -> None:
        assert self.conn is not None
        self.conn.uid("STORE", str(uid), "+FLAGS", "(\\Seen)")

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(OSError, imaplib.IMAP4.error):
                self.conn.logout()


def _quote(folder: str) -> str:
    return folder if re.fullmatch(r"[A-Za-z0-9._/-]+", folder) else '"' + folder.replace('"', r"\"") + '"'


async def poll_imap(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, *,
                    limit: int = 50) -> int:
    """Fetch and ingest messages not seen before; returns how many were read.

    Each message is ingested and the folder's last UID advanced in one transaction; only after
    that commit is it flagged \\Seen on the server, so a crash re-reads rather than loses mail.
    """
    assert settings.imap_url
    mailbox = ImapMailbox(imap_source(settings.imap_url))
    try:
        await asyncio.to_thread(mailbox.open)
        last_uid = await _last_uid(sessionmaker, mailbox)
        uids = (await asyncio.to_thread(mailbox.uids_after, last_uid))[:limit]
        for uid in uids:
            raw = await asyncio.to_thread(mailbox.fetch, uid)
            await _ingest_uid(sessionmaker, settings, mailbox, uid, raw)
            await asyncio.to_thread(mailbox.mark_seen, uid)
        return len(uids)
    finally:
        await asyncio.to_thread(mailbox.close)


async def _last_uid(sessionmaker: async_sessionmaker[AsyncSession], mailbox: ImapMailbox) -> int:
    async with sessionmaker() as session:
        cursor = await session.get(ImapCursor, mailbox.source.key)
    if cursor is None or cursor.uid_validity != mailbox.uid_validity:
        return 0  # a new folder (or one rebuilt by the server): Message-IDs still dedupe
    return cursor.last_uid


async def _ingest_uid(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings,
                      mailbox: ImapMailbox, uid: int, raw: bytes | None) -> None:
    async with sessionmaker() as session:
        if raw is not None:
            try:
                await service.ingest_raw(session, raw, settings=settings)
            except HelpdeskError as exc:  # unreadable: skip it rather than retry it forever
                log.warning("IMAP message %s skipped: %s", uid, exc.message)
                await session.rollback()
        await _advance(session, mailbox, uid)
        await session.commit()


async def _advance(session: AsyncSession, mailbox: ImapMailbox, uid: int) -> None:
    key = mailbox.source.key
    await serialize_on(session, f"imap:{key}")
    cursor = await session.get(ImapCursor, key)
    if cursor is None:
        session.add(ImapCursor(mailbox=key, uid_validity=mailbox.uid_validity, last_uid=uid))
        return
    if cursor.uid_validity != mailbox.uid_validity:
        cursor.uid_validity, cursor.last_uid = mailbox.uid_validity, 0
    cursor.last_uid = max(cursor.last_uid, uid)
    cursor.updated_at = utcnow()


async def poll_or_warn(sessionmaker: async_sessionmaker[AsyncSession], settings: Settings) -> None:
    """One poll, as the app runs it every ``imap_poll_seconds``: a mail server being down is a
    warning in the log and is tried again at the next poll."""
    try:
        await poll_imap(sessionmaker, settings)
    except Exception as exc:  # a mail server being down must not stop the app
        log.warning("IMAP poll failed: %s", exc)
