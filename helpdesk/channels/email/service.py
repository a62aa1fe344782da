"""Email: raw RFC 822 mail in (parsed, threaded, deduplicated), replies out (composed, sent)."""

import hashlib
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import Message
from email.policy import compat32
from email.utils import parsedate_to_datetime

import nh3
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.channels.email import charset, headers, outgoing
from helpdesk.channels.email.pictographs import Carrier
from helpdesk.config import Settings
from helpdesk.errors import BadInput
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundAttachment, InboundMessage, IngestResult, Sender

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
TOKEN_ADDRESS = re.compile(r"^[^@+\s]+\+([0-9a-f]{16})@", re.IGNORECASE)
RECIPIENT_HEADERS = ("To", "Cc", "Delivered-To", "X-Original-To", "Envelope-To")


@dataclass
class ParsedMail:
    """What a raw message says, decoded."""

    message_id: str
    from_name: str | None
    from_email: str | None
    recipients: list[str]
    subject: str
    text: str
    quoted: str
    html: str | None
    references: list[str]
    auto_reply: bool
    date: datetime | None
    attachments: list[InboundAttachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # Everyone the mail was addressed to or copied to (To and Cc): "reply all" keeps the others.
    cc: list[str] = field(default_factory=list)


def _part_text(part: Message, carrier: Carrier | None) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    return charset.decode(payload, part.get_content_charset(), carrier=carrier).replace("\r\n", "\n")


def _filename(part: Message) -> str | None:
    name = part.get_filename()
    if name is None:
        return None
    if isinstance(name, bytes):  # RFC 2231 with an unknown charset
        return charset.sniff(name)
    return headers.decode_header_value(name) or None


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    if part.get_content_maintype() == "text" and not _filename(part):
        return False
    return part.get_content_maintype() != "multipart"


def _walk_bodies(message: Message, mail: ParsedMail,
                 carrier: Carrier | None) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    htmls: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        if _is_attachment(part):
            _add_attachment(part, mail)
        elif part.get_content_type() == "text/html":
            htmls.append(_part_text(part, carrier))
        else:
            texts.append(_part_text(part, carrier))
    return texts, htmls


def _add_attachment(part: Message, mail: ParsedMail) -> None:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        data = inner[0].as_bytes() if isinstance(inner, list) and isinstance(inner[0], Message) else b""
        name = _filename(part) or "message.eml"
    else:
        raw = part.get_payload(decode=True)
        data = raw if isinstance(raw, bytes) else b""
        name = _filename(part) or f"attachment.{part.get_content_subtype() or 'bin'}"
    if len(data) > MAX_ATTACHMENT_BYTES:
        mail.notes.append(
            f"[添付ファイル「{name}」は {len(data) // 1024} KiB で上限を超えるため保存していません]")
        return
    content_id = headers.MESSAGE_ID.findall(str(part.get("Content-ID", "")))
    mail.attachments.append(InboundAttachment(
        filename=name, content_type=part.get_content_type(), data=data,
        content_id=content_id[0][:255] if content_id else None,
    ))


def html_to_text(markup: str) -> str:
    """Readable plain text from an HTML body (line breaks kept, tags and scripts dropped)."""
    marked = re.sub(r"(?i)<br\s*/?>|</(p|div|li|tr|h[1-6]|blockquote)>", "\n", markup)
    stripped = nh3.clean(marked, tags=set())
    lines = [line.rstrip() for line in html.unescape(stripped).splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


# Lines that start the quoted history in replies from common mailers, in English and Japanese.
_ATTRIBUTION = [
    re.compile(r"^On .{4,200}wrote:\s*$"),
    re.compile(r"^\d{4}[年/.\-]\s*\d{1,2}[月/.\-]\s*\d{1,2}.{0,120}(wrote|書きました|:|：)\s*$"),
    re.compile(r"^-{2,}\s*(Original Message|元のメッセージ|転送されたメッセージ|Forwarded message)\s*-{2,}",
               re.IGNORECASE),
    re.compile(r"^_{10,}\s*$"),
]
# Lines that start a forwarded message: what follows is what the customer wants us to read.
_FORWARD = re.compile(r"^-*\s*(Begin forwarded message|Forwarded message|開始転送メッセージ|"
                      r"転送されたメッセージ|転送メッセージ)\s*-*\s*[:：]?\s*-*$", re.IGNORECASE)
_OUTLOOK_FROM = re.compile(r"^\*?(From|差出人|送信者)\s*[:：]")
_OUTLOOK_NEXT = re.compile(r"^\*?(Sent|Date|送信日時|日時|To|宛先)\s*[:：]")


def split_quoted(text: str) -> tuple[str, str]:
    """(new text, quoted history) of a reply; the history starts at its attribution line."""
    lines = text.split("\n")
    forward = next((i for i, line in enumerate(lines) if _FORWARD.match(line.strip())), None)
    start = _history_start(lines)
    if forward is not None and (start is None or forward <= start):
        return text.strip(), ""  # a forward ("iPhoneから送信" and the mail): all of it is the message
    return _cut(lines, start) if start is not None else (text.strip(), "")


def _history_start(lines: list[str]) -> int | None:
    """The line where the quoted history begins, if there is one."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        joined = f"{stripped} {lines[index + 1].strip()}" if index + 1 < len(lines) else stripped
        if any(p.match(stripped) or p.match(joined) for p in _ATTRIBUTION) or (
                _OUTLOOK_FROM.match(stripped)
                and any(_OUTLOOK_NEXT.match(n.strip()) for n in lines[index + 1:index + 4])):
            return index
    return _trailing_quote(lines)


def _trailing_quote(lines: list[str]) -> int | None:
    """Where a final block of ``>`` lines begins (with the attribution line just above it)."""
    start = None
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].strip()
        if stripped.startswith(">"):
            start = index
        elif stripped and start is not None:
            return index if stripped.endswith((":", "：")) else start
        elif stripped:
            return start
    return start


def _cut(lines: list[str], index: int) -> tuple[str, str]:
    new = "\n".join(lines[:index]).strip()
    quoted = "\n".join(lines[index:]).strip()
    if not new:  # a forward or a top-quote with nothing above: all of it is the message
        return quoted, ""
    return new, quoted


def parse(raw: bytes) -> ParsedMail:
    """Decode a raw RFC 822 message; 422 when it is not one (no sender address)."""
    message = message_from_bytes(raw, policy=compat32)
    carrier = headers.sender_carrier(message)
    senders = (headers.addresses(message, ["From"], carrier)
               or headers.addresses(message, ["Sender", "Return-Path"], carrier))
    if not senders:
        raise BadInput("not an email message: no From address")
    ids = headers.message_ids(str(message.get("Message-ID", "")))
    references = headers.message_ids(str(message.get("References", ""))) + headers.message_ids(
        str(message.get("In-Reply-To", "")))
    mail = ParsedMail(
        message_id=ids[0] if ids else "sha256:" + hashlib.sha256(raw).hexdigest(),
        from_name=senders[0][0] or None, from_email=senders[0][1],
        recipients=[addr for _, addr in headers.addresses(message, RECIPIENT_HEADERS)],
        subject=" ".join(headers.decode_header_value(s, carrier=carrier)
                         for s in headers.raw_headers(message, "Subject")[:1]), text="", quoted="", html=None,
        references=list(dict.fromkeys(references)), auto_reply=headers.is_auto_reply(message),
        date=_date(message.get("Date")),
        cc=[addr for _, addr in headers.addresses(message, ["To", "Cc"])],
    )
    texts, htmls = _walk_bodies(message, mail, carrier)
    full_text = "\n\n".join(t.strip("\n") for t in texts if t.strip())
    mail.html = "\n".join(htmls) if htmls else None
    if not full_text and mail.html:
        full_text = html_to_text(mail.html)
    mail.text, mail.quoted = split_quoted(full_text)
    if mail.notes:
        mail.text = "\n".join([mail.text, *mail.notes]).strip()
    return mail


def _date(value: object) -> datetime | None:
    try:
        parsed = parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def ticket_token(addresses: Iterable[str]) -> str | None:
    """The ticket token in a reply address (``support+<token>@shop.example``)."""
    for address in addresses:
        if found := TOKEN_ADDRESS.match(address.strip().strip("<>")):
            return found.group(1).lower()
    return None


def to_inbound(mail: ParsedMail, *, inbox: str = "default",
               envelope_recipients: Sequence[str] = ()) -> InboundMessage:
    """The InboundMessage ingest takes for a parsed mail."""
    addresses = [*envelope_recipients, *mail.recipients]
    body_html = mail.html
    if body_html is None and mail.quoted:
        body_html = (f"<div>{_as_html(mail.text)}</div><details class=\"quoted\"><summary>…</summary>"
                     f"<blockquote>{_as_html(mail.quoted)}</blockquote></details>")
    return InboundMessage(
        channel=Channel.email, external_id=mail.message_id[:headers.MAX_EXTERNAL_ID],
        sender=Sender(name=mail.from_name, email=mail.from_email), subject=mail.subject[:300],
        body_text=mail.text, body_html=body_html, inbox=inbox, references=mail.references,
        ticket_token=ticket_token(addresses), ticket_number=headers.ticket_number(mail.subject),
        auto_reply=mail.auto_reply, attachments=mail.attachments, received_at=None,
        metadata={"quoted": mail.quoted} if mail.quoted else {},
    )


def _as_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


async def ingest_raw(session: AsyncSession, raw: bytes, *, settings: Settings,
                     envelope_recipients: Sequence[str] = ()) -> IngestResult:
    """Parse and ingest one raw message into the inbox it was addressed to; the caller commits."""
    mail = parse(raw)
    bare = [_without_tag(a) for a in [*envelope_recipients, *mail.recipients]]
    inbox = await inbox_service.inbox_by_address(session, bare)
    inbound = to_inbound(mail, inbox=inbox.name if inbox else "default",
                         envelope_recipients=envelope_recipients)
    result = await ticket_ingest.ingest(session, inbound, options=ticket_ingest.IngestOptions(
        region=settings.default_region))
    if not result.duplicate:
        own = [a.lower() for a in (inbox.email_address if inbox else None, settings.mail_from,
                                   mail.from_email) if a]
        await outgoing.record_inbound_cc(session, result.message_id,
                                         [a for a in mail.cc if _without_tag(a) not in own], own=own)
    return result


def _without_tag(address: str) -> str:
    local, _, domain = address.strip().strip("<>").lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"
