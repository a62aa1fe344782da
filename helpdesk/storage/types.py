"""Column types every table shares, and reading driver rows through their result processors."""

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A datetime stored as UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class EnumString(TypeDecorator[StrEnum]):
    """A StrEnum stored as plain text (no native enum types to migrate) and read back as the enum."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: StrEnum | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self.enum(value).value

    def process_result_value(self, value: str | None, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


def processed_rows(
    rows: Iterable[Sequence[Any]], processors: Sequence[Callable[[Any], Any] | None]
) -> list[tuple[Any, ...]]:
    """A driver's rows as tuples, each column through its result processor (None: as it is)."""
    converted = [(index, process) for index, process in enumerate(processors) if process]
    if not converted:
        return [tuple(row) for row in rows]
    shaped = []
    for row in rows:
        values = list(row)
        for index, process in converted:
            if values[index] is not None:
                values[index] = process(values[index])
        shaped.append(tuple(values))
    return shaped
