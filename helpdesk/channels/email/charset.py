"""Japanese mail charsets as they really arrive, decoded the way Windows mailers encoded them.

Python's strict ``iso2022_jp`` and ``euc_jp`` codecs refuse the NEC and IBM extension characters
(①, ㈱, Ⅲ…) that Outlook and most Japanese mailers put in ISO-2022-JP (Microsoft's CP50220)
and EUC-JP (CP51932). Both are JIS X 0208 plus those rows, so we shift them to Shift_JIS
arithmetically and decode as CP932, which knows every one of them. Mobile carriers' pictographs
become Unicode emoji (``pictographs``); whatever cannot be read becomes one U+FFFD per
character, never half a character and a stray kana.
"""

import codecs
import re
import unicodedata

from helpdesk.channels.email import pictographs
from helpdesk.channels.email.pictographs import REPLACEMENT, Carrier

ESC = 0x1B
_ISO2022 = {"iso-2022-jp", "iso2022-jp", "iso2022jp", "csiso2022jp", "iso-2022-jp-1",
            "iso-2022-jp-2", "iso-2022-jp-3", "iso-2022-jp-2004", "iso-2022-jp-ms", "cp50220",
            "cp50221", "cp50222", "jis", "x-jis", "iso-2022-jp-kddi"}
_SJIS = {"shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis", "windows-31j",
         "cp932", "ms932", "x-ms-cp932", "shift_jisx0213", "shift_jis_2004", "x-sjis-docomo",
         "x-sjis-kddi", "x-sjis-softbank"}
_EUC = {"euc-jp", "eucjp", "x-euc-jp", "euc_jp", "cseucpkdfmtjapanese", "cp51932", "eucjp-ms",
        "euc-jis-2004"}
_JIS_ESCAPE = re.compile(rb"\x1b\$[@B]")
_HALFWIDTH_KANA = re.compile("[\uff61-\uff9f]+")
_PAIRWISE = "helpdesk-cp932-pair"
_PICTOGRAPH_LEAD = re.compile(rb"[\xf0-\xfc]")


def _replace_pair(error: UnicodeError) -> tuple[str, int]:
    """CP932 errors: an unknown two-byte code is one U+FFFD, not U+FFFD and a stray trail byte."""
    assert isinstance(error, UnicodeDecodeError)
    data, start = error.object, error.start
    lead = data[start]
    two = (0x81 <= lead <= 0x9F or 0xE0 <= lead <= 0xFC) and start + 1 < len(data) and (
        0x40 <= data[start + 1] <= 0xFC and data[start + 1] != 0x7F)
    return REPLACEMENT, start + (2 if two else 1)


codecs.register_error(_PAIRWISE, _replace_pair)


def decode(data: bytes, charset: str | None, *, carrier: Carrier | None = None) -> str:
    """Text from ``data`` in ``charset`` (sniffed when absent or unknown); never raises.

    ``carrier`` is the mobile carrier the sender's address belongs to, which tells whose
    pictographs the private-use codes are.
    """
    name = (charset or "").strip().strip('"').lower()
    if name in _ISO2022 or (not name and _JIS_ESCAPE.search(data)):
        return _decode_iso2022(data, carrier)
    if name in _SJIS:
        return decode_sjis(data, carrier)
    if name in _EUC:
        return _decode_euc(data, carrier)
    if name and name not in ("us-ascii", "ascii", "unknown-8bit", "x-unknown", "8bit"):
        try:
            return pictographs.in_private_use(data.decode(codecs.lookup(name).name, "replace"),
                                              carrier)
        except LookupError:
            pass
    return sniff(data, carrier=carrier)


def sniff(data: bytes, *, carrier: Carrier | None = None) -> str:
    """Decode bytes of unknown charset: JIS escapes, then UTF-8, then Shift_JIS or EUC-JP."""
    if _JIS_ESCAPE.search(data):
        return _decode_iso2022(data, carrier)
    try:
        return pictographs.in_private_use(data.decode("utf-8"), carrier)
    except UnicodeDecodeError:
        pass
    # EUC-JP bytes are mostly valid Shift_JIS too (as half-width katakana): keep the reading
    # that looks more like Japanese prose.
    if not _could_be_euc(data):
        return decode_sjis(data, carrier)
    candidates = [decode_sjis(data, carrier), _decode_euc(data, carrier)]
    return max(candidates, key=_japanese_score)


def _could_be_euc(data: bytes) -> bool:
    """Whether every byte past ASCII makes a well-formed EUC-JP character.

    Shift_JIS writes most kana and kanji with lead bytes 0x81–0x9F, which EUC-JP never uses
    (bar its two single shifts), so a short Shift_JIS name is told apart here rather than by
    how Japanese each reading looks.
    """
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte < 0x80:
            i += 1
        elif byte == 0x8E and i + 1 < n and 0xA1 <= data[i + 1] <= 0xDF:
            i += 2
        elif byte == 0x8F and i + 2 < n and data[i + 1] >= 0xA1 and data[i + 2] >= 0xA1:
            i += 3
        elif 0xA1 <= byte <= 0xFE and i + 1 < n and 0xA1 <= data[i + 1] <= 0xFE:
            i += 2
        else:
            return False
    return True


def decode_sjis(data: bytes, carrier: Carrier | None = None) -> str:
    """Shift_JIS as CP932 writes it, with carriers' pictographs as emoji."""
    if not _PICTOGRAPH_LEAD.search(data):  # no byte F0–FC anywhere: no pictograph either
        return data.decode("cp932", _PAIRWISE)
    parts: list[str] = []
    start = i = 0
    n = len(data)
    while i < n:
        lead = data[i]
        two = (0x81 <= lead <= 0x9F or 0xE0 <= lead <= 0xFC) and i + 1 < n
        if two and lead >= 0xF0:
            emoji = pictographs.from_sjis(lead << 8 | data[i + 1], carrier)
            if emoji is None and lead <= 0xF9:  # user-defined rows: a private-use glyph otherwise
                emoji = REPLACEMENT
            if emoji is not None:
                parts += [data[start:i].decode("cp932", _PAIRWISE), emoji]
                start = i + 2
        i += 2 if two else 1
    parts.append(data[start:].decode("cp932", _PAIRWISE))
    return "".join(parts)


class _Decoded:
    """JIS or EUC text rebuilt as Shift_JIS bytes, with characters decided on the way."""

    def __init__(self, carrier: Carrier | None) -> None:
        self.carrier = carrier
        self.parts: list[str] = []
        self.pending = bytearray()

    def char(self, text: str) -> None:
        self.parts.append(decode_sjis(bytes(self.pending), self.carrier))
        self.pending.clear()
        self.parts.append(text)

    def text(self) -> str:
        self.char("")
        return "".join(self.parts)


def _japanese_score(text: str) -> int:
    score = 0
    for char in text:
        code = ord(char)
        if 0x3040 <= code <= 0x30FF or 0x4E00 <= code <= 0x9FFF or 0x3000 <= code <= 0x303F:
            score += 2
        elif 0xFF61 <= code <= 0xFF9F or char == "\ufffd":
            score -= 3
    return score


def _jis_to_sjis(c1: int, c2: int) -> bytes:
    """One JIS X 0208 pair (rows 1–94, bytes 0x21–0x7E) as its Shift_JIS pair."""
    s2 = c2 + 31 + (1 if c2 >= 96 else 0) if c1 % 2 else c2 + 126
    s1 = (c1 + 1) // 2 + 0x70
    if s1 >= 0xA0:
        s1 += 0x40
    return bytes((s1, s2))


def _decode_iso2022(data: bytes, carrier: Carrier | None = None) -> str:
    out = _Decoded(carrier)
    mode = "ascii"
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte == ESC:
            mode, i = _escape(data, i, mode)
            continue
        if byte in (0x0E, 0x0F):  # SO / SI: CP50221's shifted half-width katakana
            mode = "kana" if byte == 0x0E else "ascii"
            i += 1
            continue
        if byte in (0x0A, 0x0D):  # a line ends: mailers that forget ESC ( B reset here
            mode = "ascii" if mode != "x0212" else mode
            out.pending.append(byte)
            i += 1
            continue
        if mode in ("kanji", "x0212") and i + 1 < n and 0x21 <= byte <= 0x7E:
            c2 = data[i + 1]
            if mode == "kanji" and 0x21 <= c2 <= 0x7E:
                _jis_pair(out, byte, c2)
            else:  # JIS X 0212, which CP932 lacks
                out.char(REPLACEMENT)
            i += 2
            continue
        out.pending.append(byte + 0x80 if mode == "kana" and 0x21 <= byte <= 0x5F else byte)
        i += 1
    return out.text()


def _jis_pair(out: _Decoded, c1: int, c2: int) -> None:
    """One JIS cell. Rows 85–94 are empty in JIS X 0208: au's pictographs live in 85–91, and
    CP50220 writers put the NEC-selected IBM kanji (髙, 﨑…) in 89–92, so those rows are read
    as pictographs only in mail from au."""
    sjis = _jis_to_sjis(c1, c2)
    if c1 >= 0x75:
        if out.carrier in (None, "kddi") and c1 <= pictographs.AU_LAST_ROW and (
                out.carrier == "kddi" or c1 < 0x79) and (emoji := pictographs.from_au_jis(sjis)):
            out.char(emoji)
            return
        if not 0x79 <= c1 <= 0x7C:
            out.char(REPLACEMENT)
            return
    out.pending += sjis


def _escape(data: bytes, i: int, mode: str) -> tuple[str, int]:
    seq = data[i + 1:i + 4]
    if seq[:2] in (b"$B", b"$@"):
        return "kanji", i + 3
    if seq[:3] == b"$(D":
        return "x0212", i + 4
    if seq[:2] in (b"(B", b"(J"):
        return "ascii", i + 3
    if seq[:2] == b"(I":
        return "kana", i + 3
    return mode, i + 1  # an unknown escape: drop the ESC, keep the rest as it comes


def _decode_euc(data: bytes, carrier: Carrier | None = None) -> str:
    out = _Decoded(carrier)
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte == 0x8E and i + 1 < n:  # SS2: half-width katakana
            out.pending.append(data[i + 1])
            i += 2
        elif byte == 0x8F and i + 2 < n:  # SS3: JIS X 0212, which CP932 lacks
            out.char(REPLACEMENT)
            i += 3
        elif byte >= 0xA1 and i + 1 < n and data[i + 1] >= 0xA1:
            _jis_pair(out, byte - 0x80, data[i + 1] - 0x80)
            i += 2
        else:
            out.pending.append(byte)
            i += 1
    return out.text()


# ---- encoding replies -----------------------------------------------------------------------


def _sjis_to_jis(s1: int, s2: int) -> tuple[int, int]:
    base = s1 - (0xB0 if s1 >= 0xE0 else 0x70)
    if s2 >= 0x9F:
        return base * 2, s2 - 0x7E
    return base * 2 - 1, s2 - 0x1F - (1 if s2 >= 0x80 else 0)


def encode_iso2022(text: str) -> bytes:
    """``text`` as ISO-2022-JP with Microsoft's extensions (CP50220).

    Half-width katakana become full-width, as ISO-2022-JP has none. Raises UnicodeEncodeError
    for what it cannot carry (emoji, rare kanji), so the caller can fall back to UTF-8.
    """
    text = _HALFWIDTH_KANA.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    out = bytearray()
    kanji = False
    for char in text:
        if ord(char) < 0x80:
            if kanji:
                out += b"\x1b(B"
                kanji = False
            out += char.encode("ascii")
            continue
        pair = char.encode("cp932")
        if len(pair) != 2:
            raise UnicodeEncodeError("iso-2022-jp", char, 0, 1, "not a JIS X 0208 character")
        c1, c2 = _sjis_to_jis(pair[0], pair[1])
        if not (0x21 <= c1 <= 0x7E and 0x21 <= c2 <= 0x7E):
            raise UnicodeEncodeError("iso-2022-jp", char, 0, 1, "outside JIS X 0208 and NEC rows")
        if not kanji:
            out += b"\x1b$B"
            kanji = True
        out += bytes((c1, c2))
    if kanji:
        out += b"\x1b(B"
    return bytes(out)


def can_encode_iso2022(text: str) -> bool:
    """Whether ``text`` survives ISO-2022-JP (CP50220)."""
    try:
        encode_iso2022(text)
    except UnicodeEncodeError:
        return False
    return True
