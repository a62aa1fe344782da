"""Carrier pictographs (絵文字) in Japanese mobile mail, read as the Unicode emoji they became.

docomo, au and SoftBank phones wrote pictographs in rows that JIS X 0208 and CP932 leave to
private use: Shift_JIS lead bytes F0–F9 (and SoftBank's FB, which CP932 gives to IBM kanji),
and, in au's ISO-2022-JP mail, JIS rows 85–92. Decoded as plain CP932 they become invisible
private-use characters or half a character and a stray kana. Unicode 6.0 gave each an emoji;
``pictographs.txt`` is its mapping table (EmojiSources.txt of the Unicode Character Database).
"""

import re
from functools import cache
from pathlib import Path
from typing import Literal

Carrier = Literal["docomo", "kddi", "softbank"]
CARRIERS: tuple[Carrier, ...] = ("docomo", "kddi", "softbank")
REPLACEMENT = "\ufffd"

_TABLE = Path(__file__).with_name("pictographs.txt")
# Mail domains of each carrier's phones (subdomains included).
_DOMAINS: dict[str, Carrier] = {
    "docomo.ne.jp": "docomo", "ezweb.ne.jp": "kddi", "au.com": "kddi", "biz.ezweb.ne.jp": "kddi",
    "softbank.ne.jp": "softbank", "i.softbank.jp": "softbank", "vodafone.ne.jp": "softbank",
    "disney.ne.jp": "softbank",
}
# au's ISO-2022-JP pictographs sit in JIS rows 85–92, which the usual JIS to Shift_JIS
# arithmetic puts at EB–EE; au's own Shift_JIS codes for them have these lead bytes instead.
_AU_MAIL_LEADS = {0xEB: 0xF6, 0xEC: 0xF7, 0xED: 0xF3, 0xEE: 0xF4}
AU_LAST_ROW = 0x7C
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")


@cache
def _tables() -> dict[Carrier, dict[int, str]]:
    tables: dict[Carrier, dict[int, str]] = {carrier: {} for carrier in CARRIERS}
    for line in _TABLE.read_text("utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        chars, *codes = line.split(";")
        emoji = "".join(chr(int(c, 16)) for c in chars.split())
        for carrier, code in zip(CARRIERS, codes, strict=True):
            if code:
                tables[carrier][int(code, 16)] = emoji
    return tables


def carrier_of(address: str | None) -> Carrier | None:
    """The carrier whose phones send from ``address``, when its domain tells."""
    domain = (address or "").rpartition("@")[2].strip().strip(">").lower()
    while domain:
        if found := _DOMAINS.get(domain):
            return found
        domain = domain.partition(".")[2]
    return None


def from_sjis(code: int, carrier: Carrier | None) -> str | None:
    """The emoji of a two-byte Shift_JIS pictograph code, or None when it is not one.

    Without a known carrier docomo's codes are tried first, then au's, then SoftBank's outside
    the FA–FC rows (where CP932 keeps IBM kanji such as 髙 and 﨑).
    """
    tables = _tables()
    if carrier is not None:
        return tables[carrier].get(code)
    for name in CARRIERS:
        if (found := tables[name].get(code)) and (name != "softbank" or code < 0xFA00):
            return found
    return None


def from_au_jis(sjis: bytes) -> str | None:
    """The emoji of au's ISO-2022-JP pictograph, given as its JIS cell shifted to Shift_JIS."""
    lead = _AU_MAIL_LEADS.get(sjis[0])
    return from_sjis(lead << 8 | sjis[1], "kddi") if lead else None


def in_private_use(text: str, carrier: Carrier | None) -> str:
    """docomo's and au's pictographs as their phones write them in UTF-8 (private-use code
    points) turned into emoji; left alone for other senders, whose private-use characters
    are their own."""
    if carrier not in ("docomo", "kddi") or not _PRIVATE_USE.search(text):
        return text
    return _PRIVATE_USE.sub(lambda m: _from_private(ord(m.group()), carrier) or REPLACEMENT, text)


def _from_private(code_point: int, carrier: Carrier) -> str | None:
    # docomo's code points are CP932's reading of its Shift_JIS codes, and so are au's from
    # U+E468 to U+E5DF; au's U+EA80 onwards follow its codes from F340 cell by cell.
    if carrier == "kddi" and code_point >= 0xEA80:
        code_point = code_point - 0xEA80 + 0xE000 + 3 * 188
    if not 0xE000 <= code_point < 0xE000 + 10 * 188:
        return None
    return from_sjis(_private_to_sjis(code_point), carrier)


def _private_to_sjis(code_point: int) -> int:
    """The Shift_JIS code CP932 reads as private-use ``code_point`` (U+E000 is F040)."""
    offset = code_point - 0xE000
    trail = offset % 188
    return (0xF0 + offset // 188) << 8 | (0x40 + trail + (1 if trail >= 0x3F else 0))
