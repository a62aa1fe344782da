"""Writers of one key, one at a time."""

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.storage import prepared
from helpdesk.storage.sessions import dialect_of

# Taken on every inbound message (its delivery key), so it runs through the storage kit.
_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


async def serialize_on(session: AsyncSession, key: str) -> None:
    """Hold a transaction-scoped lock on ``key`` so racing writers of one key go one at a time.

    PostgreSQL gets an advisory lock; SQLite's write transactions are already serial.
    """
    if dialect_of(session) != "postgresql":
        return
    await prepared.execute(session, _LOCK, {"k": _lock_key(key)})


async def try_serialize_on(session: AsyncSession, key: str) -> bool:
    """Like ``serialize_on``, but False at once when another transaction holds ``key``."""
    if dialect_of(session) != "postgresql":
        return True
    taken = await session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _lock_key(key)})
    return bool(taken)


def _lock_key(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
