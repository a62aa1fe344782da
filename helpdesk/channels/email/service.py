"""Email: raw RFC 822 mail in (parsed, threaded, deduplicated), replies out (composed, sent)."""

import base64
import binascii
import hashlib
import html
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.message import EmailMessage, Message
from email.policy import EmailPolicy, compat32
from email.utils import format_datetime, formataddr, getaddresses, parsedate_to_datetime
from typing import Any

import nh3
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import boundary, normalize
from helpdesk.channels.email import charset, outgoing, pictographs
from helpdesk.channels.email.pictographs import Carrier
from helpdesk.config import Settings
from helpdesk.errors import BadInput
from helpdesk.outbox.service import OutboundFile
from helpdesk.routing import service as routing
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import (
    Channel,
    InboundAttachment,
    InboundMessage,
    IngestResult,
    Sender,
)

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
MAX_EXTERNAL_ID = 255
TOKEN_ADDRESS = re.compile(r"^[^@+\s]+\+([0-9a-f]{16})@", re.IGNORECASE)
SUBJECT_TAG = re.compile(r"\[#(\d{1,12})\]")
MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
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


# ---- headers -------------------------------------------------------------------------------


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def decode_header_value(raw: str | None, *, carrier: Carrier | None = None) -> str:
    """A header's text: encoded words in any Japanese charset, raw 8-bit bytes, or both, decoded.

    ``raw`` is the header as parsed from bytes, each byte past ASCII kept as a surrogate
    escape: raw UTF-8 (SMTPUTF8 senders) and raw Shift_JIS (old mobile mailers) are sniffed
    from those bytes. Adjacent encoded words of one charset are joined before decoding, since
    mailers split them in the middle of a character or an ISO-2022-JP escape.
    """
    if not raw:
        return ""
    raw = re.sub(r"\r?\n[ \t]", " ", str(raw))
    parts: list[str] = []
    words: list[bytes] = []
    word_charset = ""
    position = 0

    def flush_words() -> None:
        if words:
            parts.append(charset.decode(b"".join(words), word_charset, carrier=carrier))
            words.clear()

    for found in _ENCODED_WORD.finditer(raw):
        between = raw[position:found.start()]
        data = _word_bytes(found.group(2), found.group(3))
        name = found.group(1).split("*", 1)[0]
        if data is None:  # a malformed encoded word: show it as it came
            flush_words()
            parts.append(_literal(between + found.group(0), carrier))
        else:
            if between.strip() or name.lower() != word_charset.lower():
                flush_words()
                if position == 0 or between.strip():
                    parts.append(_literal(between, carrier))
            words.append(data)
            word_charset = name
        position = found.end()
    flush_words()
    parts.append(_literal(raw[position:], carrier))
    return "".join(parts).strip()


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    try:
        if encoding in "bB":
            return binascii.a2b_base64(payload + "=" * (-len(payload) % 4))
        return binascii.a2b_qp(payload.encode("ascii"), header=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _literal(text: str, carrier: Carrier | None) -> str:
    """Header text outside encoded words: raw 8-bit bytes or raw ISO-2022-JP are sniffed."""
    if text.isascii() and "\x1b" not in text:
        return text
    return charset.sniff(text.encode("utf-8", "surrogateescape"), carrier=carrier)


def _raw_headers(message: Message, name: str) -> list[str]:
    """A header's values as they came, undecoded (compat32 turns raw 8-bit bytes into U+FFFD)."""
    return [str(value) for key, value in message.raw_items() if key.lower() == name.lower()]


_NAME_AND_ADDRESS = re.compile(r"^\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$", re.DOTALL)


def _addresses(message: Message, names: Iterable[str],
               carrier: Carrier | None = None) -> list[tuple[str, str]]:
    values = [value for name in names for value in _raw_headers(message, name)]
    return [(decode_header_value(name, carrier=carrier), _literal(addr, carrier).strip().lower())
            for name, addr in _split_addresses(values) if "@" in addr]


def _split_addresses(values: list[str]) -> list[tuple[str, str]]:
    """(display name, address) pairs. A name in raw Shift_JIS holds bytes such as ① (87 40)
    whose second byte is "@" or a bracket, so a single ``name <address>`` with raw 8-bit bytes
    is split at its angle brackets rather than parsed as address syntax."""
    found: list[tuple[str, str]] = []
    for value in values:
        unfolded = re.sub(r"\r?\n[ \t]", " ", value)
        single = _NAME_AND_ADDRESS.match(unfolded) if not unfolded.isascii() else None
        if single and "," not in single.group(2):
            found.append((single.group(1).strip().strip('"'), single.group(2)))
        else:
            found.extend(getaddresses([value]))
    return found


def _sender_carrier(message: Message) -> Carrier | None:
    """The mobile carrier of the From address, whose pictographs the mail may carry."""
    found = getaddresses(_raw_headers(message, "From"))
    return pictographs.carrier_of(found[0][1]) if found else None


def _message_ids(value: str | None) -> list[str]:
    return [m[:MAX_EXTERNAL_ID] for m in MESSAGE_ID.findall(value or "")]


def is_auto_reply(message: Message) -> bool:
    """Vacation notices, bounces and bulk mail: they never reopen a ticket or get an answer."""
    auto_submitted = str(message.get("Auto-Submitted", "")).strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if message.get("X-Autoreply") or message.get("X-Autorespond") or message.get("X-Auto-Reply"):
        return True
    if str(message.get("Precedence", "")).strip().lower() in ("bulk", "junk", "auto_reply", "list"):
        return True
    content_type = str(message.get("Content-Type", "")).lower()
    return "report-type=delivery-status" in content_type.replace('"', "")


# ---- bodies --------------------------------------------------------------------------------


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
    return decode_header_value(name) or None


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
    content_id = MESSAGE_ID.findall(str(part.get("Content-ID", "")))
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


# ---- the whole message ----------------------------------------------------------------------


def parse(raw: bytes) -> ParsedMail:
    """Decode a raw RFC 822 message; 422 when it is not one (no sender address)."""
    message = message_from_bytes(raw, policy=compat32)
    carrier = _sender_carrier(message)
    senders = (_addresses(message, ["From"], carrier)
               or _addresses(message, ["Sender", "Return-Path"], carrier))
    if not senders:
        raise BadInput("not an email message: no From address")
    ids = _message_ids(str(message.get("Message-ID", "")))
    references = _message_ids(str(message.get("References", ""))) + _message_ids(
        str(message.get("In-Reply-To", "")))
    mail = ParsedMail(
        message_id=ids[0] if ids else "sha256:" + hashlib.sha256(raw).hexdigest(),
        from_name=senders[0][0] or None, from_email=senders[0][1],
        recipients=[addr for _, addr in _addresses(message, RECIPIENT_HEADERS)],
        subject=" ".join(decode_header_value(s, carrier=carrier)
                         for s in _raw_headers(message, "Subject")[:1]), text="", quoted="", html=None,
        references=list(dict.fromkeys(references)), auto_reply=is_auto_reply(message),
        date=_date(message.get("Date")), cc=[addr for _, addr in _addresses(message, ["To", "Cc"])],
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


def ticket_number(subject: str) -> int | None:
    """The ticket number tagged in a subject (``Re: 配送について [#1042]``)."""
    found = SUBJECT_TAG.search(normalize.nfkc(subject))
    return int(found.group(1)) if found else None


def to_inbound(mail: ParsedMail, *, inbox: str = "default",
               envelope_recipients: Sequence[str] = ()) -> InboundMessage:
    """The InboundMessage ingest takes for a parsed mail."""
    addresses = [*envelope_recipients, *mail.recipients]
    body_html = mail.html
    if body_html is None and mail.quoted:
        body_html = (f"<div>{_as_html(mail.text)}</div><details class=\"quoted\"><summary>…</summary>"
                     f"<blockquote>{_as_html(mail.quoted)}</blockquote></details>")
    return InboundMessage(
        channel=Channel.email, external_id=mail.message_id[:MAX_EXTERNAL_ID],
        sender=Sender(name=mail.from_name, email=mail.from_email), subject=mail.subject[:300],
        body_text=mail.text, body_html=body_html, inbox=inbox, references=mail.references,
        ticket_token=ticket_token(addresses), ticket_number=ticket_number(mail.subject),
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
    inbox = await routing.inbox_by_address(session, bare)
    inbound = to_inbound(mail, inbox=inbox.name if inbox else "default",
                         envelope_recipients=envelope_recipients)
    result = await tickets.ingest(session, inbound, options=tickets.IngestOptions(
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


# ---- replies out ----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingMail:
    raw: bytes
    message_id: str
    sender: str
    recipients: list[str]


def reply_addresses(inbox_email: str | None, fallback: str, token: str) -> tuple[str, str]:
    """(From address, Reply-To address carrying the ticket token)."""
    address = (inbox_email or fallback).strip()
    local, _, domain = address.rpartition("@")
    return address, f"{local}+{token}@{domain}"


def compose_reply(
    *, message_id: int, ticket_number: int, ticket_subject: str, token: str, body_text: str,
    author: str | None, to_email: str, to_name: str | None, inbox_email: str | None,
    fallback_from: str, charset_name: str, in_reply_to: str | None, references: Sequence[str],
    now: datetime, cc: Sequence[str] = (), bcc: Sequence[str] = (),
    files: Sequence[OutboundFile] = (),
) -> OutgoingMail:
    """An operator's reply as a raw message that threads (Message-ID, In-Reply-To, References)."""
    from_address, reply_to = reply_addresses(inbox_email, fallback_from, token)
    domain = from_address.rpartition("@")[2] or "helpdesk.invalid"
    # The same outbox item always gets the same Message-ID, so a retried send is recognisable.
    mid = f"helpdesk.{message_id}.{token}@{domain}"
    # Tickets stored before ingest folded line breaks may still hold them: fold again here.
    subject = _reply_subject(boundary.one_line(ticket_subject), ticket_number)
    author, to_name = boundary.one_line_or_none(author), boundary.one_line_or_none(to_name)
    text = body_text.replace("\r\n", "\n")
    use_jis = charset_name.lower().replace("_", "-") in ("iso-2022-jp", "jis") and all(
        charset.can_encode_iso2022(part) for part in (text, subject, author or "", to_name or ""))
    encode = _jis_words if use_jis else _utf8_words
    refs = [r for r in references if "@" in r and _is_msg_id(r)][-20:]
    message = EmailMessage(policy=REPLY_POLICY)
    message["From"] = _address(encode, author, from_address)
    message["To"] = _address(encode, to_name, to_email)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Reply-To"] = reply_to
    message["Subject"] = encode(subject)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = f"<{mid}>"
    if in_reply_to and "@" in in_reply_to and _is_msg_id(in_reply_to):
        message["In-Reply-To"] = f"<{in_reply_to}>"
    if refs:
        message["References"] = " ".join(f"<{r}>" for r in refs)
    if use_jis:
        body = b"\r\n".join(charset.encode_iso2022(line) for line in text.split("\n"))
        message.set_content(body, "text", "plain", cte="7bit", params={"charset": "ISO-2022-JP"})
    else:
        message.set_content(text.replace("\n", "\r\n").encode(), "text", "plain", cte="base64",
                            params={"charset": "UTF-8"})
    outgoing.add_parts(message, text=text, files=files)  # Bcc goes in the envelope only
    return OutgoingMail(raw=message.as_bytes(), message_id=mid, sender=from_address,
                        recipients=list(dict.fromkeys([to_email, *cc, *bcc])))


class ReplyPolicy(EmailPolicy):
    """Headers as this module encodes them (7-bit, encoded words), and never a line break.

    The standard policy would re-encode ISO-2022-JP words as UTF-8; this one keeps them as
    given and refuses any value holding CR or LF, so nothing a customer wrote can add a header.
    """

    def header_store_parse(self, name: str, value: Any) -> tuple[str, Any]:
        text = str(value)
        if "\r" in text or "\n" in text or not text.isascii():
            raise ValueError(f"the {name} header may not hold a line break or raw 8-bit text")
        return name, text

    def fold(self, name: str, value: str) -> str:
        return _fold_header(name, value, self.linesep)

    def fold_binary(self, name: str, value: str) -> bytes:
        return _fold_header(name, value, self.linesep).encode("ascii")


REPLY_POLICY = ReplyPolicy(linesep="\r\n", refold_source="none")


def _fold_header(name: str, value: str, linesep: str) -> str:
    """``Name: value``, wrapped at spaces before 78 columns where it can be."""
    lines = [f"{name}:"]
    for word in value.split(" "):
        if len(lines[-1]) + 1 + len(word) > 76 and lines[-1].strip():
            lines.append("")
        lines[-1] += " " + word
    return linesep.join(lines) + linesep


def _is_msg_id(value: str) -> bool:
    return MESSAGE_ID.fullmatch(f"<{value}>") is not None


def _reply_subject(subject: str, number: int) -> str:
    base = subject.strip() or "お問い合わせ"
    if not re.match(r"(?i)^(re|aw|sv)\s*[:：]", base):
        base = f"Re: {base}"
    return base if ticket_number(base) == number else f"{base} [#{number}]"


def _address(encode: Callable[[str], str], name: str | None, address: str) -> str:
    if not name:
        return address
    if name.isascii():  # quoted (and escaped) when it holds specials such as ":" or "<"
        return formataddr((name, address))
    return f"{encode(name)} <{address}>"


def _words(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def _jis_words(text: str) -> str:
    if text.isascii():
        return text
    # Each encoded word starts and ends in ASCII mode, so any of them can be decoded alone.
    return " ".join(f"=?ISO-2022-JP?B?{base64.b64encode(charset.encode_iso2022(w)).decode()}?="
                        for w in _words(text, 12))


def _utf8_words(text: str) -> str:
    if text.isascii():
        return text
    return " ".join(f"=?UTF-8?B?{base64.b64encode(w.encode()).decode()}?="
                        for w in _words(text, 12))

