"""Carrier pictographs (絵文字) in Japanese mobile mail, read as the Unicode emoji they became.

docomo, au and SoftBank phones wrote pictographs in rows that JIS X 0208 and CP932 leave to
private use: Shift_JIS lead bytes F0–F9 (and SoftBank's FB, which CP932 gives to IBM kanji),
and, in au's ISO-2022-JP mail, JIS rows 85–92. Decoded as plain CP932 they become invisible
private-use characters or half a character and a stray kana. Unicode 6.0 gave each an emoji;
``pictographs.txt`` is its mapping table (EmojiSources.txt of the Unicode Character Database).
"""

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
