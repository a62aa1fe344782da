"""Named counters that only go up (event sequence, ticket numbers)."""

from sqlalchemy import BigInteger, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel


async def next_counter(session: AsyncSession, name: str, count: int = 1) -> int:
    """Advance a named counter by ``count`` and return its new value (the last number taken).

    The row lock it takes is held until commit, so numbers are handed out in commit order.
    """
    result = await session.execute(
        text("UPDATE counter SET value = value + :n WHERE name = :name RETURNING value"),
        {"n": count, "name": name},
    )
    value = result.scalar_one_or_none()
    if value is None:
        await session.execute(
            text("INSERT INTO counter (name, value) VALUES (:name, :n)"), {"n": count, "name": name}
        )
        return count
    return int(value)


async def raise_counter(session: AsyncSession, name: str, value: int) -> None:
    """Set a named counter to ``value`` unless it is already higher (it never goes back)."""
    params = {"name": name, "v": value}
    await session.execute(text(
        "INSERT INTO counter (name, value) VALUES (:name, :v) ON CONFLICT (name) DO NOTHING"), params)
    await session.execute(text(
        "UPDATE counter SET value = :v WHERE name = :name AND value < :v"), params)


async def read_counter(session: AsyncSession, name: str) -> int:
    """A named counter's value; 0 when it was never set."""
    value = await session.scalar(text("SELECT value FROM counter WHERE name = :name"), {"name": name})
    return int(value or 0)


class Counter(SQLModel, table=True):
    """Named monotonically increasing numbers (event seq, ticket number)."""

    __tablename__ = "counter"

    name: str = Field(primary_key=True, max_length=40)
    value: int = Field(default=0, sa_type=BigInteger)
