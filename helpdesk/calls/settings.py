"""The admin-edited telephony settings: blocked callers, outbound caller ids, business hours, and
what each inbox's callers hear (greeting, keypad menu, hold music, closed-hours message).

Every call reads the settings row's ``updated_at`` (one indexed read) and parses the settings
again only when it moved, so an edit made by any process is seen by the next call everywhere.
Saving an inbox's voice settings moves it too.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import normalize
from helpdesk.calls.settings_models import CtiConfig, CtiSettings, InboxVoice, VoiceConfig
from helpdesk.config import DEFAULT_REGION
from helpdesk.db import utcnow
from helpdesk.storage import prepared


@dataclass(frozen=True)
class Cached:
    """The parsed settings row of one database as of one ``updated_at``, with its blocked list
    normalised once (a long list would otherwise be parsed again on every call)."""

    updated_at: datetime
    config: CtiConfig
    blocked: "BlockedCallers"
    voice: dict[int, VoiceConfig] = field(default_factory=dict)  # per inbox id


# Per database: the settings as last read. The row's ``updated_at`` is read on every use, so an
# edit made by any process is seen by the next call everywhere.
_config_cache: dict[str, Cached] = {}
CTI_SETTINGS: Table = CtiSettings.__table__  # type: ignore[attr-defined]
class _ConfigVersion(NamedTuple):
    updated_at: datetime


_CONFIG_VERSION = prepared.Query(select(CTI_SETTINGS.c.updated_at).where(CTI_SETTINGS.c.id == 1),
                                 _ConfigVersion)


async def cti_config(session: AsyncSession) -> CtiConfig:
    """The admin-edited blocked list, routing table, default caller id and business hours."""
    return (await cached(session, DEFAULT_REGION)).config


async def cached(session: AsyncSession, region: str) -> Cached:
    """The CTI settings, parsed once per change of the row (checked with one indexed read)."""
    key = f"{session.get_bind().engine.url}|{region}"
    version = await prepared.first(session, _CONFIG_VERSION)
    if version is None:  # never saved: the defaults
        return Cached(datetime.min, CtiConfig(), BlockedCallers(frozenset(), frozenset()))
    found = _config_cache.get(key)
    if found is not None and found.updated_at == version.updated_at:
        return found
    row = await session.get(CtiSettings, 1, populate_existing=True)
    assert row is not None
    config = CtiConfig.model_validate({
        "blocked_caller_ids": row.blocked_caller_ids, "routing_table": row.routing_table,
        "default_caller_id": row.default_caller_id, "business_hours": row.business_hours})
    voices = await session.scalars(select(InboxVoice).execution_options(populate_existing=True))
    found = Cached(row.updated_at, config, BlockedCallers.of(config, region),
                   {v.inbox_id: VoiceConfig.model_validate(v.config) for v in voices})
    _config_cache[key] = found
    return found


async def voice_config(session: AsyncSession, inbox_id: int) -> VoiceConfig:
    """What callers to the inbox hear (the defaults when nothing was set)."""
    return (await cached(session, DEFAULT_REGION)).voice.get(inbox_id) or VoiceConfig()


async def save_voice_config(session: AsyncSession, inbox_id: int, config: VoiceConfig) -> VoiceConfig:
    """Replace what callers to the inbox hear; every process sees it from its next call."""
    row = await session.get(InboxVoice, inbox_id) or InboxVoice(inbox_id=inbox_id)
    row.config, row.updated_at = config.model_dump(mode="json"), utcnow()
    session.add(row)
    settings = await session.get(CtiSettings, 1) or CtiSettings(id=1)
    settings.updated_at = utcnow()
    session.add(settings)
    await session.flush()
    return config


async def save_cti_config(session: AsyncSession, config: CtiConfig) -> CtiConfig:
    """Replace the CTI settings."""
    row = await session.get(CtiSettings, 1) or CtiSettings(id=1)
    row.blocked_caller_ids = config.blocked_caller_ids
    row.routing_table = [route.model_dump() for route in config.routing_table]
    row.default_caller_id = config.default_caller_id
    row.business_hours = config.business_hours.model_dump() if config.business_hours else None
    row.updated_at = utcnow()
    session.add(row)
    await session.flush()
    return config


@dataclass(frozen=True)
class BlockedCallers:
    """The blocked list, each entry normalised once: as E.164 where it parses, and NFKC."""

    e164: frozenset[str]
    folded: frozenset[str]

    @classmethod
    def of(cls, config: CtiConfig, region: str) -> "BlockedCallers":
        """The blocked list of ``config``, read with ``region``'s numbering."""
        numbers = {normalize.phone(item, region) for item in config.blocked_caller_ids}
        return cls(frozenset(n for n in numbers if n is not None),
                   frozenset(normalize.nfkc(item) for item in config.blocked_caller_ids))

    def match(self, caller: str, *, region: str) -> bool:
        """Whether the caller id is on the list (compared as E.164 when both parse)."""
        e164 = normalize.phone(caller, region)
        return (e164 is not None and e164 in self.e164) or normalize.nfkc(caller) in self.folded


def outbound_caller_id(config: CtiConfig, destination: str) -> str | None:
    """The caller id for a destination: the first matching route (``*`` = any digits), or default."""
    for route in config.routing_table:
        pattern = ".+?".join(re.escape(part) for part in route.dest.split("*"))
        if re.fullmatch(pattern, destination.strip()):
            return route.caller_id
    return config.default_caller_id


