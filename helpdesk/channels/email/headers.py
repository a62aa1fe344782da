"""Email headers read as sent: encoded words in any charset, addresses, message ids, auto-replies."""

import binascii
import re
from collections.abc import Iterable
from email.message import Message
from email.utils import getaddresses

from helpdesk import normalize
from helpdesk.channels.email import charset, pictographs
from helpdesk.channels.email.pictographs import Carrier

MAX_EXTERNAL_ID = 255
MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
SUBJECT_TAG = re.compile(r"\[#(\d{1,12})\]")

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


def raw_headers(message: Message, name: str) -> list[str]:
    """A header's values as they came, undecoded (compat32 turns raw 8-bit bytes into U+FFFD)."""
    return [str(value) for key, value in message.raw_items() if key.lower() == name.lower()]


_NAME_AND_ADDRESS = re.compile(r"^\s*(.*?)\s*<([^<>\s]+@[^<>\s]+)>\s*$", re.DOTALL)


def addresses(message: Message, names: Iterable[str],
               carrier: Carrier | None = None) -> list[tuple[str, str]]:
    values = [value for name in names for value in raw_headers(message, name)]
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


def sender_carrier(message: Message) -> Carrier | None:
    """The mobile carrier of the From address, whose pictographs the mail may carry."""
    found = getaddresses(raw_headers(message, "From"))
    return pictographs.carrier_of(found[0][1]) if found else None


def message_ids(value: str | None) -> list[str]:
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


def ticket_number(subject: str) -> int | None:
    """The ticket number tagged in a subject (``Re: 配送について [#1042]``)."""
    found = SUBJECT_TAG.search(normalize.nfkc(subject))
    return int(found.group(1)) if found else None
