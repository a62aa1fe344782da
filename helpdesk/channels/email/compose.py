"""Email replies out: addresses that thread back to the ticket, and headers Japanese mail readers decode."""

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr
from typing import Any

from helpdesk import boundary
from helpdesk.channels.email import charset, outgoing
from helpdesk.channels.email.headers import MESSAGE_ID, ticket_number
from helpdesk.outbox.service import OutboundFile


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
