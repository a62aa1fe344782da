"""event seqs and ticket numbers from sequences on PostgreSQL

On PostgreSQL the event log's seqs come from the sequence ``event_log_seq`` (owned by
``event.seq``) rather than from the ``event_seq`` counter row, so writers no longer queue on one
row lock until their commit; readers read up to a horizon instead (``realtime.log``). The
sequence starts after the counter's value. Ticket numbers likewise come from
``ticket_number_seq`` (owned by ``ticket.number``). SQLite keeps the counters (one writer at a
time).

Revision ID: 0027
Revises: 0024
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0027'
down_revision: str | None = '0026'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (sequence, the column owning it, the counter row it replaces, its first value when unset)
SEQUENCES = [("event_log_seq", "event.seq", "event_seq", 1),
             ("ticket_number_seq", "ticket.number", "ticket_number", 1001)]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for sequence, owner, counter, first in SEQUENCES:
        start = f"(SELECT COALESCE(MAX(value), {first - 1}) + 1 FROM counter WHERE name = '{counter}')"
        op.execute(f"CREATE SEQUENCE {sequence} AS bigint OWNED BY {owner}")
        # START is where TRUNCATE … RESTART IDENTITY goes back to; setval where it goes on from.
        op.execute(f"DO $$ BEGIN EXECUTE format('ALTER SEQUENCE {sequence} START WITH %s RESTART',"
                   f" {start}); END $$")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for sequence, _owner, counter, _first in SEQUENCES:
        op.execute(f"UPDATE counter SET value = GREATEST(value, (SELECT CASE WHEN is_called THEN"
                   f" last_value ELSE last_value - 1 END FROM {sequence})) WHERE name = '{counter}'")
        op.execute(f"DROP SEQUENCE {sequence}")
