"""event seqs from a sequence on PostgreSQL

On PostgreSQL the event log's seqs come from the sequence ``event_log_seq`` (owned by
``event.seq``) rather than from the ``event_seq`` counter row, so writers no longer queue on one
row lock until their commit; readers read up to a horizon instead (``realtime.log``). The
sequence starts after the counter's value. SQLite keeps the counter (one writer at a time).

Revision ID: 0027
Revises: 0024
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0027'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE SEQUENCE event_log_seq AS bigint OWNED BY event.seq")
    op.execute("SELECT setval('event_log_seq', GREATEST(1, COALESCE(MAX(value), 0)), COALESCE(MAX(value), 0) > 0)"
               " FROM counter WHERE name = 'event_seq'")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("UPDATE counter SET value = GREATEST(value, (SELECT CASE WHEN is_called THEN last_value"
               " ELSE last_value - 1 END FROM event_log_seq)) WHERE name = 'event_seq'")
    op.execute("DROP SEQUENCE event_log_seq")
