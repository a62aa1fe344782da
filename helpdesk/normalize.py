"""Normalising what customers type into keys: emails, Japanese phone numbers, search text.

What people read is stored as it was written (``kept``); the folded forms here are for
matching and search only (see docs/architecture.md, "Customer text").
"""

import re
import unicodedata
from functools import lru_cache

import phonenumbers

from helpdesk.config import DEFAULT_REGION

# Dash-like characters Japanese users and IMEs produce in phone numbers.
_DASHES = "‐‑‒–—―−ｰーｰ－﹣⁃"
_PHONE_JUNK = re.compile(rf"[\s{_DASHES}.()（）/\-]")
# Carriers and PBXs send these for callers who withheld or lack a number.
_WITHHELD = {"", "anonymous", "unknown", "private", "restricted", "withheld", "unavailable",
             "非通知", "通知不可能", "公衆電話", "表示圏外"}


def nfkc(value: str) -> str:
    """NFKC with surrounding white space removed: full-width ASCII and half-width kana folded."""
    return unicodedata.normalize("NFKC", value).strip()


def kept(value: str | None) -> str | None:
    """Text people read, as written: only surrounding white space removed; None when empty."""
    if value is None:
        return None
    return value.strip() or None


def region(code: str | None) -> str | None:
    """An ISO 3166 country code phone numbers can be read in (``us`` → ``US``), or None."""
    folded = (code or "").strip().upper()
    return folded if folded in phonenumbers.SUPPORTED_REGIONS else None


# Where names are written family name first (elsewhere given name first).
_FAMILY_FIRST = frozenset({"JP", "CN", "TW", "HK", "MO", "KR", "KP", "VN", "HU", "MN", "KH"})
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af\uff66-\uff9f]")


def person_name(family: str | None, given: str | None, *, country: str | None) -> str | None:
    """Family and given names joined in the order ``country`` writes them; without a country,
    family first for names in Japanese, Chinese or Korean script, given first otherwise."""
    family, given = kept(family), kept(given)
    if country:
        family_first = country.upper() in _FAMILY_FIRST
    else:
        family_first = bool(_CJK.search(f"{family or ''}{given or ''}"))
    parts = (family, given) if family_first else (given, family)
    return " ".join(p for p in parts if p) or None


def name(value: str | None) -> str | None:
    """A person's name as a key: widths folded and runs of white space collapsed."""
    if value is None:
        return None
    folded = " ".join(nfkc(value).split())
    return folded or None


def email(value: str | None) -> str | None:
    """An email address folded to one spelling, or None when it is not one."""
    if not value:
        return None
    folded = nfkc(value).lower().strip("<>")
    local, _, domain = folded.rpartition("@")
    if not local or not domain or "." not in domain or " " in folded:
        return None
    return f"{local}@{domain}"


def is_withheld(raw: str | None) -> bool:
    """True for anonymous, withheld or empty caller ids."""
    return raw is None or nfkc(raw).lower().strip("+") in _WITHHELD


@lru_cache(maxsize=8192)
def phone(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """A phone number as E.164, or None when it is withheld or not a valid number.

    Handles full-width digits, every dash variant, and the ``+81 (0)3…`` trunk-prefix habit.
    Remembered per spelling: a call asks for its caller's number several times (routing, the
    blocked list, the screen pop), and callers ring again.
    """
    if is_withheld(raw):
        return None
    assert raw is not None
    folded = nfkc(raw)
    folded = folded.replace("(0)", "")
    folded = _PHONE_JUNK.sub("", folded)
    if folded.startswith("00"):
        folded = "+" + folded[2:]
    if not re.fullmatch(r"\+?\d{4,17}", folded):
        return None
    if (international := _international_digits(folded, region)) is not None:
        return international
    try:
        parsed = phonenumbers.parse(folded, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _international_digits(digits: str, region: str) -> str | None:
    """E.164 written without its ``+`` (``4912347114711``, as Zammad's CTI and many PBXs send
    it), in a region whose national numbers begin with the trunk prefix: digits that do not
    (``81312345678``, not ``0312345678``) are read as international when they make a possible
    number that way and no valid national one. Regions written without the prefix (the US's
    ``555 625 1199``) are left alone: there, such digits are national numbers."""
    prefix = _dialling(region)[1]
    if (len(digits) < 8 or not digits.isdigit() or not prefix or digits.startswith(prefix)
            or not _written_with_prefix(region)):
        return None
    try:
        parsed = phonenumbers.parse("+" + digits, None)
        national = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed) or (
            phonenumbers.is_valid_number(national) and not phonenumbers.is_valid_number(parsed)):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=64)
def _written_with_prefix(region: str) -> bool:
    """Whether people of ``region`` write national numbers with the trunk prefix (03-…, 030 …)."""
    example = phonenumbers.example_number(region)
    prefix = _dialling(region)[1]
    if example is None or not prefix:
        return False
    national = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
    return re.sub(r"\D", "", national).startswith(prefix)


@lru_cache(maxsize=8192)
def phone_display(e164: str, region: str = DEFAULT_REGION) -> str:
    """A number formatted the way people of ``region`` write it (national inside, else intl)."""
    parsed = phonenumbers.parse(e164, region)
    if phonenumbers.region_code_for_number(parsed) == region:
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def phone_for_people(value: str | None, region: str = DEFAULT_REGION) -> str:
    """A stored E.164 number as ``phone_display`` writes it; anything else (a withheld caller,
    a number that never parsed) exactly as stored."""
    if not value or not value.startswith("+") or not value[1:].isdigit():
        return value or ""
    try:
        return phone_display(value, region)
    except phonenumbers.NumberParseException:
        return value


def phone_search_digits(e164: str, region: str = DEFAULT_REGION) -> str:
    """The digits of a number as people type them, indexed for partial search.

    They are those of ``phone_display`` (national prefix and number inside the region, the
    country code and number outside), built from the country code alone: formatting with
    phonenumbers costs ~0.1 ms, which an import of 100,000 customers pays 100,000 times. A
    query written in E.164 is turned into these digits (``search.query_forms``) rather than
    the E.164 form being indexed too: every indexed character costs imports a trigram.
    """
    code, prefix = _dialling(region)
    if e164.startswith(code):
        return prefix + e164[len(code):]
    return e164.lstrip("+")


@lru_cache(maxsize=64)
def _dialling(region: str) -> tuple[str, str]:
    """A region's ``+country code`` and national (trunk) prefix, such as ("+81", "0")."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    code = phonenumbers.country_code_for_region(region)
    return f"+{code}", (metadata.national_prefix or "") if metadata else ""


_HIRAGANA = "".join(chr(c) for c in range(0x3041, 0x3097))
_KATAKANA = "".join(chr(c + 0x60) for c in range(0x3041, 0x3097))
_TO_KATAKANA = str.maketrans(_HIRAGANA, _KATAKANA)
_TO_HIRAGANA = str.maketrans(_KATAKANA, _HIRAGANA)


def katakana(value: str) -> str:
    """Hiragana turned into katakana (after NFKC, so half-width kana become full-width too)."""
    return nfkc(value).translate(_TO_KATAKANA)


def hiragana(value: str) -> str:
    """Katakana turned into hiragana, for searching a reading typed either way."""
    return nfkc(value).translate(_TO_HIRAGANA)
