"""The admin-edited CTI and voice settings: their tables and the shapes stored in them."""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, field_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime


class CtiSettings(SQLModel, table=True):
    """The admin-edited telephony settings: one row, id 1."""

    __tablename__ = "cti_settings"

    id: int = Field(default=1, primary_key=True)
    blocked_caller_ids: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    routing_table: list[dict[str, Any]] = Field(default_factory=list,
                                                sa_column=Column(JSON, nullable=False))
    default_caller_id: str | None = Field(default=None, max_length=40)
    business_hours: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InboxVoice(SQLModel, table=True):
    """What callers to one inbox hear: greeting, keypad menu, hold music, closed-hours message."""

    __tablename__ = "inbox_voice"

    inbox_id: int = Field(primary_key=True, foreign_key="inbox.id", ondelete="CASCADE")
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


_PATTERN_CHARS = set("0123456789*+#")


class Route(BaseModel):
    dest: str = PydanticField(min_length=1, max_length=40)
    caller_id: str = PydanticField(min_length=1, max_length=40)
    note: str | None = PydanticField(default=None, max_length=200)

    @field_validator("dest")
    @classmethod
    def _digits_and_stars(cls, value: str) -> str:
        if not set(value) <= _PATTERN_CHARS:
            raise ValueError("dest may hold digits, '+', '#' and '*' only")
        return value


class BusinessHours(BaseModel):
    """Opening hours in the helpdesk's time zone; days are 0 (Monday) to 6 (Sunday)."""

    days: list[int] = PydanticField(default=[0, 1, 2, 3, 4], max_length=7)
    open: str = PydanticField(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    close: str = PydanticField(default="18:00", pattern=r"^([01]\d|2[0-4]):[0-5]\d$")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if any(day not in range(7) for day in value):
            raise ValueError("days are 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))


class CtiConfig(BaseModel):
    blocked_caller_ids: list[str] = PydanticField(default=[], max_length=10_000)
    routing_table: list[Route] = PydanticField(default=[], max_length=1000)
    default_caller_id: str | None = PydanticField(default=None, max_length=40)
    business_hours: BusinessHours | None = None

    @field_validator("blocked_caller_ids")
    @classmethod
    def _short(cls, value: list[str]) -> list[str]:
        if any(len(item) > 40 for item in value):
            raise ValueError("a caller id is at most 40 characters")
        return [item.strip() for item in value if item.strip()]


_AUDIO_URL = r"^https?://[^\s]{1,490}$"


class MenuOption(BaseModel):
    """One keypad choice: what is said, and the inbox and/or tag the call goes to."""

    digit: str = PydanticField(pattern=r"^[0-9*#]$")
    label: str = PydanticField(min_length=1, max_length=100)
    inbox_id: int | None = None
    tag: str | None = PydanticField(default=None, min_length=1, max_length=60)


class VoiceConfig(BaseModel):
    """What callers to one inbox hear, spoken in Japanese (``<Say language="ja-JP">``) or played
    from an audio file's URL where one is given."""

    greeting: str = PydanticField(default="", max_length=500)
    greeting_audio_url: str | None = PydanticField(default=None, pattern=_AUDIO_URL)
    menu: list[MenuOption] = PydanticField(default=[], max_length=12)
    hold_music_url: str | None = PydanticField(default=None, pattern=_AUDIO_URL)
    announce_position: bool = True
    callback_offer: bool = False
    closed_message: str = PydanticField(default="", max_length=500)
    closed_audio_url: str | None = PydanticField(default=None, pattern=_AUDIO_URL)
    record_calls: bool = False
    record_announcement: str = PydanticField(default="", max_length=300)

    @field_validator("menu")
    @classmethod
    def _distinct_digits(cls, value: list[MenuOption]) -> list[MenuOption]:
        digits = [option.digit for option in value]
        if len(digits) != len(set(digits)):
            raise ValueError("each keypad digit at most once")
        return value
