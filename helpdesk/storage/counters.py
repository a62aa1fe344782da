"""Named counters that only go up (event sequence, ticket numbers), and on PostgreSQL the
event log's sequence."""

from typing import NamedTuple

from sqlalchemy import BigInteger, Connection, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Field, SQLModel

from helpdesk.storage import prepared

# Counters that PostgreSQL hands out from a sequence (migration 0027): a counter row would be
# locked by every writer until its commit, making all of them, in every process, take turns.
SEQUENCES = {"ticket_number": "ticket_number_seq"}


async def next_counter(session: AsyncSession, name: str, count: int = 1) -> int:
    """Advance a named counter by ``count`` and return its new value (the last number taken).

    The row lock it takes is held until commit, so numbers are handed out in commit order;
    except, on PostgreSQL, for the counters in ``SEQUENCES`` (one number at a time, unique and
    increasing, but not in commit order, and a rolled-back number is not reused).
    """
    sequence = SEQUENCES.get(name)
    if sequence is not None and session.get_bind().dialect.name == "postgresql":
        if count != 1:
            raise ValueError(f"{name} is taken one number at a time")
        drawn = await prepared.first(session, _NEXT_OF[name])
        assert drawn is not None  # nextval always answers
        return int(drawn.value)
    # Through the storage kit: a ticket number is taken on every new conversation.
    taken = await prepared.first(session, _ADVANCE, {"n": count, "name": name})
    value = taken.value if taken is not None else None
    if value is None:
        await session.execute(
            text("INSERT INTO counter (name, value) VALUES (:name, :n)"), {"n": count, "name": name}
        )
        return count
    return int(value)


class _Value(NamedTuple):
    value: int


_NEXT_OF = {name: prepared.Query(text(f"SELECT nextval('{sequence}') AS value").columns(value=BigInteger),
                                 _Value) for name, sequence in SEQUENCES.items()}
_ADVANCE = prepared.Query(text("UPDATE counter SET value = value + :n WHERE name = :name RETURNING value")
                          .columns(value=BigInteger), _Value)


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


# ---- the event log's sequence (PostgreSQL) -------------------------------------------------
#
# On PostgreSQL event seqs come from a sequence, which never waits for anyone's commit. A writer
# first takes a shared advisory lock (held until its transaction ends) and only then its seqs,
# so every seq handed out belongs either to a finished transaction or to one holding that lock:
# readers find the unfinished ones in pg_locks (see ``realtime.horizon``).

EVENT_SEQUENCE = "event_log_seq"
EVENT_WRITING_LOCK = 0x6576_656E_7473  # the advisory key of "taking event seqs" ("events")


class TakenSeq(NamedTuple):
    """One seq handed to a committing transaction, with the access version it saw."""

    seq: int
    access_version: int | None


class SequenceProbe(NamedTuple):
    """The sequence's last value, then the transactions that were still taking or holding seqs
    (read in that order: any seq up to ``last`` is in a finished transaction or in ``writers``)."""

    last: int
    writers: frozenset[str]


# The lock comes from a subquery every output row needs, so it is held before any nextval runs.
_TAKE = prepared.Query(text(
    f"SELECT nextval('{EVENT_SEQUENCE}') AS seq,"
    " (SELECT value FROM counter WHERE name = 'access_version') AS access_version"
    " FROM (SELECT pg_advisory_xact_lock_shared(:key) IS NULL AS held) AS writing,"
    " generate_series(1, :count)").columns(seq=BigInteger, access_version=BigInteger), TakenSeq)
# The writers are read in a subquery correlated with the sequence's row: after it.
_PROBE = text(
    f"WITH s AS MATERIALIZED (SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END"
    f" AS last FROM {EVENT_SEQUENCE})"
    " SELECT s.last, ARRAY(SELECT l.virtualtransaction FROM pg_locks AS l"
    "  WHERE l.locktype = 'advisory' AND l.classid = :hi AND l.objid = :lo AND l.objsubid = 1"
    "  AND l.granted AND s.last IS NOT NULL) AS writers FROM s")


def take_event_seqs_now(connection: Connection, count: int) -> list[TakenSeq]:
    """PostgreSQL, in a before-commit hook: ``count`` seqs, ascending, this transaction marked
    as holding seqs until it ends. They need not be consecutive (other writers draw too)."""
    return sorted(prepared.rows_now(connection, _TAKE, {"key": EVENT_WRITING_LOCK, "count": count}))


async def probe_event_sequence(session: AsyncSession) -> SequenceProbe:
    """PostgreSQL: the sequence's last value and who may still hold a seq up to it."""
    hi, lo = EVENT_WRITING_LOCK >> 32, EVENT_WRITING_LOCK & 0xFFFF_FFFF
    row = (await session.execute(_PROBE, {"hi": hi, "lo": lo})).one()
    return SequenceProbe(int(row.last), frozenset(row.writers))


async def last_event_seq(session: AsyncSession) -> int:
    """PostgreSQL: the highest seq handed out so far (committed, in flight or rolled back)."""
    return (await probe_event_sequence(session)).last
