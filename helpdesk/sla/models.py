"""The shop's service-level settings: business hours, holidays, closed days and targets."""

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, field_validator, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from helpdesk.config import DEFAULT_REGION
from helpdesk.db import utcnow
from helpdesk.sla.hours import DAY_NAMES, known_country, parse_clock
from helpdesk.storage.types import UTCDateTime
from helpdesk.tickets.models import Channel, Priority

Target = Literal["first_response", "next_response", "resolution"]
TARGETS: tuple[Target, ...] = ("first_response", "next_response", "resolution")


class SlaSettings(SQLModel, table=True):
    """The admin-edited SLA settings: one row, id 1 (absent: the defaults below)."""

    __tablename__ = "sla_settings"

    id: int = Field(default=1, primary_key=True)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SlaTarget(BaseModel):
    """Business minutes allowed for one priority (and optionally one channel)."""

    priority: Priority
    channel: Channel | None = None
    first_response_minutes: int = PydanticField(ge=1, le=525_600)
    next_response_minutes: int = PydanticField(ge=1, le=525_600)
    resolution_minutes: int | None = PydanticField(default=None, ge=1, le=5_256_000)


def _weekday_hours() -> dict[str, list[list[str]]]:
    return {day: [["09:00", "18:00"]] for day in DAY_NAMES[:5]}


def _default_targets() -> list[SlaTarget]:
    minutes = {"urgent": (60, 60, 480), "high": (120, 120, 960), "normal": (480, 480, 2400),
               "low": (960, 960, 4800)}
    return [SlaTarget(priority=Priority(p), first_response_minutes=f, next_response_minutes=n,
                      resolution_minutes=r) for p, (f, n, r) in minutes.items()]


class SlaConfig(BaseModel):
    """``GET|PUT /api/admin/sla``: how deadlines are counted and what they are."""

    timezone: str = PydanticField(default="Asia/Tokyo", max_length=60)
    hours: dict[str, list[list[str]]] = PydanticField(default_factory=_weekday_hours)
    public_holidays: str | None = PydanticField(default=DEFAULT_REGION, max_length=10)
    closed_days: list[date] = PydanticField(default_factory=list, max_length=1000)
    targets: list[SlaTarget] = PydanticField(default_factory=_default_targets, max_length=100)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("timezone: not a known time zone") from None
        return value

    @field_validator("public_holidays")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not known_country(value):
            raise ValueError("public_holidays: no holiday calendar for that country")
        return value.upper()

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: dict[str, list[list[str]]]) -> dict[str, list[list[str]]]:
        for day, periods in value.items():
            if day not in DAY_NAMES:
                raise ValueError(f"hours: unknown day {day!r} (use {', '.join(DAY_NAMES)})")
            if len(periods) > 10:
                raise ValueError("hours: at most 10 periods a day")
            _check_periods(periods)
        return {day: value[day] for day in DAY_NAMES if value.get(day)}

    @model_validator(mode="after")
    def _opens_sometime(self) -> "SlaConfig":
        if not any(self.hours.values()):
            raise ValueError("hours: the shop must be open at some time of the week")
        seen = set()
        for target in self.targets:
            key = (target.priority, target.channel)
            if key in seen:
                raise ValueError("targets: one target per priority and channel")
            seen.add(key)
        self.closed_days = sorted(set(self.closed_days))
        return self


def _check_periods(periods: list[list[str]]) -> None:
    previous_end = -1
    for period in periods:
        if len(period) != 2:
            raise ValueError("hours: each period is [open, close]")
        try:
            start, end = parse_clock(period[0]), parse_clock(period[1])
        except (ValueError, AttributeError):
            raise ValueError("hours: times are HH:MM") from None
        if not previous_end <= start < end:
            raise ValueError("hours: periods must be in order, not overlap, and close after opening")
        previous_end = end
