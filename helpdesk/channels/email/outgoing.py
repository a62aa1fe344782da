"""What an email reply carries besides its text: Cc and Bcc, attached files, the HTML part.

The composer's fields are checked here (addresses that can only be addresses, files within the
limits in settings) before anything is stored; the stored values then go out on every attempt,
so a retried send carries the same recipients and files.
"""

import base64
import html
import mimetypes
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import quote

from fastapi import UploadFile
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import boundary
from helpdesk.config import Settings
from helpdesk.errors import BadInput, HelpdeskError
from helpdesk.outbox.service import OutboundFile
from helpdesk.tickets.models import Attachment, Message

MAX_ADDRESSES = 20
# An address as people type it: no quotes, comments or display names, so nothing in it can end
# a header or start another one.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
_SEPARATORS = re.compile(r"[,;、，\s]+")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,62}/[a-z0-9][a-z0-9!#$&^_.+-]{0,62}$")
SIGNATURE_DELIMITER = "\n-- \n"


@dataclass
class ReplyExtras:
    """The composer's email fields, checked."""

    cc: list[str] = field(default_factory=list)
    bcc: list[str] = field(default_factory=list)
    files: list[OutboundFile] = field(default_factory=list)


def addresses(value: str, *, label: str) -> list[str]:
    """The addresses in a Cc or Bcc field (commas, semicolons or spaces between them); 422 for
    anything that is not a plain address."""
    found: list[str] = []
    for item in _SEPARATORS.split(value.strip()):
        item = item.strip().strip("<>")
        if not item:
            continue
        if not item.isascii() or not _ADDRESS.match(item):
            raise BadInput(f"{label}: not an email address: {item[:80]}")
        local, _, domain = item.rpartition("@")
        address = f"{local}@{domain.lower()}"
        if address.lower() not in (a.lower() for a in found):
            found.append(address)
    if len(found) > MAX_ADDRESSES:
        raise BadInput(f"{label}: at most {MAX_ADDRESSES} addresses")
    return found


def safe_filename(name: str) -> str:
    """The name a file is stored and sent under: its last path part, on one line, at most 255."""
    base = re.split(r"[\\/]", name)[-1]
    base = boundary.storable(boundary.one_line(base)).replace("\t", " ").replace('"', "'")
    base = "".join(ch for ch in base if ch >= " " and ch != "\x7f").strip()
    return base[:255] or "attachment"


def content_type_of(filename: str, declared: str | None) -> str:
    """The declared type when it is a plain ``type/subtype``, else one guessed from the name."""
    value = (declared or "").split(";", 1)[0].strip().lower()
    if _CONTENT_TYPE.match(value) and value != "application/octet-stream":
        return value
    guessed = mimetypes.guess_type(filename, strict=False)[0]
    return guessed if guessed and _CONTENT_TYPE.match(guessed) else "application/octet-stream"


def blocked(filename: str, settings: Settings) -> str | None:
    """The blocked ending of ``filename`` (``.exe``), if it has one."""
    name = filename.lower().rstrip(". ")
    return next((end for end in settings.reply_attachments_blocked
                 if name.endswith(end.lower())), None)


async def read_files(uploads: Sequence[UploadFile], settings: Settings) -> list[OutboundFile]:
    """The chosen files, read within the limits: 400 too many, 415 a blocked type, 413 too big."""
    chosen = [u for u in uploads if u.filename]
    if len(chosen) > settings.reply_attachments_max_files:
        raise HelpdeskError(
            f"attachments: at most {settings.reply_attachments_max_files} files per reply",
            status_code=400)
    files: list[OutboundFile] = []
    left = settings.reply_attachments_max_bytes
    for upload in chosen:
        name = safe_filename(upload.filename or "")
        if ending := blocked(name, settings):
            raise HelpdeskError(f"attachment {name}: files ending in {ending} cannot be sent",
                                status_code=415)
        data = await upload.read(left + 1)
        if len(data) > left:
            limit_mb = settings.reply_attachments_max_bytes / (1024 * 1024)
            raise HelpdeskError(f"attachments: more than {limit_mb:g} MB in all (at {name})",
                                status_code=413)
        left -= len(data)
        files.append(OutboundFile(filename=name, content_type=content_type_of(name, upload.content_type),
                                  data=data))
    return files


async def store(session: AsyncSession, message_id: int, extras: ReplyExtras) -> None:
    """Keep a reply's Cc, Bcc and files with it (the thread shows them; every attempt sends them)."""
    if extras.cc or extras.bcc:
        await session.execute(update(Message).where(col(Message.id) == message_id).values(
            email_cc=extras.cc or None, email_bcc=extras.bcc or None))
    session.add_all(Attachment(message_id=message_id, filename=f.filename, content_type=f.content_type,
                               size=len(f.data), data=f.data) for f in extras.files)


async def record_inbound_cc(session: AsyncSession, message_id: int, cc: Sequence[str],
                            own: Sequence[str]) -> None:
    """Keep who a received mail was copied to (not our own addresses), for "reply all"."""
    kept = list(dict.fromkeys(a for a in cc if a.lower() not in {o.lower() for o in own}))[:MAX_ADDRESSES]
    if kept:
        await session.execute(update(Message).where(col(Message.id) == message_id)
                              .values(email_cc=kept))


# ---- MIME parts ------------------------------------------------------------------------------


def add_parts(message: EmailMessage, *, text: str, files: Sequence[OutboundFile]) -> None:
    """Add an HTML alternative when the text carries a signature, then the files as attachments."""
    if SIGNATURE_DELIMITER in text:
        message.make_alternative()
        message.attach(_html_part(message, text))
    if files:
        message.make_mixed()
        for item in files:
            message.attach(attachment_part(message, item))


def _html_part(message: EmailMessage, text: str) -> EmailMessage:
    body, _, signature = text.rpartition(SIGNATURE_DELIMITER)
    markup = (f'<div>{_as_html(body)}</div>\r\n<div class="signature" style="color:#555">'
              f"-- <br>{_as_html(signature)}</div>")
    part = EmailMessage(policy=message.policy)
    part.set_content(f"<!DOCTYPE html><html><body>{markup}</body></html>".encode(), "text", "html",
                     cte="base64", params={"charset": "UTF-8"})
    del part["MIME-Version"]  # said once, in the message's own headers
    return part


def _as_html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>\r\n")


def attachment_part(message: EmailMessage, item: OutboundFile) -> EmailMessage:
    """One file as a base64 part; a name past ASCII is given both ways mailers read: RFC 2231
    (``filename*``) in Content-Disposition and RFC 2047 encoded words in Content-Type's name."""
    part = EmailMessage(policy=message.policy)
    maintype, _, subtype = item.content_type.partition("/")
    part.set_content(item.data, maintype, subtype, cte="base64")
    del part["Content-Type"]
    part["Content-Type"] = (f'{item.content_type};{_text_charset(item)} '
                            f'name="{encoded_words(item.filename)}"')
    part["Content-Disposition"] = "attachment; " + rfc2231_filename(item.filename)
    del part["MIME-Version"]
    return part


def _text_charset(item: OutboundFile) -> str:
    """`` charset="UTF-8";`` for a text file that is UTF-8 (readers assume ASCII without it)."""
    if not item.content_type.startswith("text/"):
        return ""
    try:
        item.data.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    return ' charset="UTF-8";'


def encoded_words(text: str) -> str:
    """``text`` as RFC 2047 UTF-8 encoded words (whole characters in each), or as is in ASCII."""
    if text.isascii():
        return text.replace("\\", "\\\\")
    words, current = [], ""
    for ch in text:
        if len((current + ch).encode()) > 45:
            words.append(current)
            current = ""
        current += ch
    words.append(current)
    return " ".join(f"=?UTF-8?B?{base64.b64encode(w.encode()).decode()}?=" for w in words)


def rfc2231_filename(name: str) -> str:
    """The ``filename`` parameter: plain when ASCII, else ``filename*0*=UTF-8''…`` continuations
    short enough that no line of the header passes 78 columns."""
    if name.isascii():
        return f'filename="{name.replace(chr(92), chr(92) * 2)}"'
    encoded = quote(name, safe="")
    chunks = [encoded[i:i + 60] for i in range(0, len(encoded), 60)]
    # A chunk must not end inside a %XX escape: move a cut escape to the next chunk.
    for i in range(len(chunks) - 1):
        cut = chunks[i].rfind("%")
        if cut > len(chunks[i]) - 3:
            chunks[i], chunks[i + 1] = chunks[i][:cut], chunks[i][cut:] + chunks[i + 1]
    first = f"filename*0*=UTF-8''{chunks[0]}"
    return "; ".join([first, *(f"filename*{i}*={c}" for i, c in enumerate(chunks[1:], 1))]) \
        if len(chunks) > 1 else f"filename*=UTF-8''{chunks[0]}"
