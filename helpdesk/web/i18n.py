"""Languages and time zones of the pages: Babel catalogues, read once, chosen per request."""

from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from babel import Locale as BabelLocale
from babel.dates import (
    DateTimePattern,
    format_date,
    format_datetime,
    format_timedelta,
    get_date_format,
    get_datetime_format,
    get_time_format,
    parse_pattern,
)
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
LANGUAGES = {"ja": "日本語", "en": "English"}
DEFAULT_LANGUAGE = "ja"
DEFAULT_TIMEZONE = "Asia/Tokyo"
LANG_COOKIE = "helpdesk_lang"


@dataclass(frozen=True)
class Locale:
    """What a page is rendered in: a language and a time zone."""

    language: str = DEFAULT_LANGUAGE
    timezone: str = DEFAULT_TIMEZONE

    @property
    def tz(self) -> tzinfo:
        """The zone object, UTC when the name is unknown."""
        return zone(self.timezone)


_current: ContextVar[Locale | None] = ContextVar("helpdesk_locale", default=None)


@cache
def translations(language: str) -> NullTranslations:
    """The catalogue for ``language`` compiled in memory from its .po file."""
    path = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


@cache
def zone(name: str) -> tzinfo:
    """A time zone by IANA name; unknown names fall back to Asia/Tokyo."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


@cache
def timezone_names() -> list[str]:
    """Every IANA zone name, sorted, for the preferences form."""
    return sorted(available_timezones())


def language_or_default(value: str | None) -> str:
    """``value`` when it is a language we have, else the default."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE


def from_accept_language(header: str | None) -> str:
    """The first supported language a browser asks for."""
    for part in (header or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT_LANGUAGE


def activate(locale: Locale) -> None:
    """Make ``locale`` the one gettext and the formatters use in this context."""
    _current.set(locale)


def current() -> Locale:
    """The locale being rendered (Japanese in Asia/Tokyo unless a render chose another)."""
    return _current.get() or Locale()


def gettext(message: str) -> str:
    """``message`` in the current language."""
    return translations(current().language).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural form of a message in the current language."""
    return translations(current().language).ngettext(singular, plural, n)


@cache
def babel_locale(language: str) -> BabelLocale:
    """Babel's locale for a language, parsed once: given a bare name, each formatting call
    would parse it again (a list page formats several dates a row)."""
    return BabelLocale.parse(language)


NamedForm = Literal["full", "long", "medium", "short"]
_NAMED_FORMS: tuple[NamedForm, ...] = ("full", "long", "medium", "short")


@cache
def _datetime_patterns(language: str, form: NamedForm) -> tuple[str, DateTimePattern, DateTimePattern]:
    """How ``format_datetime`` spells a named form: the glue of date and time, each one's
    pattern. Babel looks all three up and parses both patterns again on every call."""
    locale = babel_locale(language)
    glue = str(get_datetime_format(form, locale=locale)).replace("'", "")
    return (glue, parse_pattern(get_date_format(form, locale=locale)),
            parse_pattern(get_time_format(form, locale=locale)))


def format_dt(value: datetime | None, form: str = "short") -> str:
    """A UTC datetime shown in the viewer's zone and language."""
    if value is None:
        return ""
    locale = current()
    named = next((name for name in _NAMED_FORMS if name == form), None)
    if named is None:
        return format_datetime(value, form, tzinfo=locale.tz, locale=babel_locale(locale.language))
    # What format_datetime does for a named form, with its lookups done once per language.
    language = babel_locale(locale.language)
    local = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(locale.tz)
    glue, on_day, at_time = _datetime_patterns(locale.language, named)
    return (glue.replace("{0}", at_time.apply(local.timetz(), language, reference_date=local.date()))
            .replace("{1}", on_day.apply(local.date(), language)))


def format_day(value: datetime | date | None) -> str:
    """The date part only, in the viewer's zone (a plain date as it is)."""
    if value is None:
        return ""
    locale = current()
    if not isinstance(value, datetime):
        return format_date(value, "medium", locale=babel_locale(locale.language))
    return format_date(value.astimezone(locale.tz), "medium", locale=babel_locale(locale.language))


def format_age(value: datetime | None, now: datetime | None = None) -> str:
    """How long ago ``value`` was, in its largest whole unit ("3 時間", "2 days")."""
    if value is None:
        return ""
    elapsed = max((now or datetime.now(UTC)) - value, timedelta(0))
    return format_timedelta(elapsed, format="short", threshold=1,
                            locale=babel_locale(current().language))


def format_money(value: Decimal | int | float | None, currency: str = "JPY") -> str:
    """An amount with its currency, as the viewer's language writes it."""
    if value is None:
        return ""
    return format_currency(value, currency, locale=current().language)


def format_number(value: Decimal | int | float | None) -> str:
    """A number with grouping."""
    if value is None:
        return ""
    return format_decimal(value, locale=current().language)
