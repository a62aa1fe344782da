"""board: today's pace kept per quarter hour, counters per channel, an index for the queue

ticket_count gains the channel (part of its key, counted again from the tickets), so operators'
loads, weighted by channel, are read from it rather than counted; and a shard (part of the key),
so concurrent writers on PostgreSQL add to different rows of one key.
ticket_pace: per quarter hour (UTC) and assignee, the tickets resolved and first answered then and
the sum of their durations in microseconds (kept by a flush hook, see tickets/pace.py), filled
here from the last three days' tickets. ix_ticket_assignee_status_updated replaces
ix_ticket_assignee_id: the board's queue (nobody's open tickets, longest waiting first) walks it
with a limit, and an operator's load reads only their open tickets.

Revision ID: 0026
Revises: 0024
"""
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

import helpdesk.db

revision: str = '0026'
down_revision: str | None = '0025'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SLOT = timedelta(minutes=15)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)


def upgrade() -> None:
    pace = op.create_table('ticket_pace',
    sa.Column('slot', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=False),
    sa.Column('resolved', sa.Integer(), nullable=False),
    sa.Column('resolution_us', sa.BigInteger(), nullable=False),
    sa.Column('responded', sa.Integer(), nullable=False),
    sa.Column('response_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('slot', 'assignee_id', name=op.f('pk_ticket_pace'))
    )
    op.drop_index('ix_ticket_assignee_id', table_name='ticket')
    op.create_index('ix_ticket_assignee_status_updated', 'ticket',
                    ['assignee_id', 'status', 'updated_at', 'id'], unique=False)
    _fill(pace)
    _count_by(['inbox_id', 'assignee_id', 'status', 'channel', 'shard'])


def _count_by(key: list[str]) -> None:
    """ticket_count made again with ``key``, from the tickets."""
    op.drop_table('ticket_count')
    op.create_table('ticket_count',
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    *([sa.Column('channel', sa.String(length=20), nullable=False),
       sa.Column('shard', sa.Integer(), nullable=False)] if 'channel' in key else []),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint(*key, name=op.f('pk_ticket_count'))
    )
    columns = ', '.join(key)
    grouped = ', '.join(name for name in key if name != 'shard').replace('assignee_id', 'COALESCE(assignee_id, 0)')
    shard = ', 0' if 'shard' in key else ''
    op.execute(f"INSERT INTO ticket_count ({columns}, n) SELECT {grouped}{shard}, COUNT(*) FROM ticket "
               f"GROUP BY {grouped}")


def _fill(pace: sa.Table) -> None:
    """The last three days' resolutions and first responses, as the flush hook would keep them."""
    horizon = datetime.now(UTC) - timedelta(days=3)
    ticket = sa.table('ticket', sa.column('status'), sa.column('assignee_id'),
                      sa.column('created_at', helpdesk.db.UTCDateTime()),
                      sa.column('resolved_at', helpdesk.db.UTCDateTime()),
                      sa.column('first_response_at', helpdesk.db.UTCDateTime()))
    rows = op.get_bind().execute(
        sa.select(ticket.c.status, ticket.c.assignee_id, ticket.c.created_at, ticket.c.resolved_at,
                  ticket.c.first_response_at)
        .where(ticket.c.assignee_id.is_not(None),
               sa.or_(ticket.c.resolved_at >= horizon, ticket.c.first_response_at >= horizon)))
    tally: dict[tuple[datetime, int], list[int]] = {}
    for status, assignee, created, resolved, first in rows:
        if status == 'resolved' and resolved is not None and resolved >= horizon:
            row = tally.setdefault((_slot(resolved), assignee), [0, 0, 0, 0])
            row[0] += 1
            row[1] += (resolved - created) // US
        if first is not None and first >= horizon:
            row = tally.setdefault((_slot(first), assignee), [0, 0, 0, 0])
            row[2] += 1
            row[3] += max(timedelta(0), first - created) // US
    if tally:
        op.bulk_insert(pace, [{'slot': slot, 'assignee_id': assignee, 'resolved': r, 'resolution_us': rus,
                               'responded': f, 'response_us': fus}
                              for (slot, assignee), (r, rus, f, fus) in sorted(tally.items())])


def _slot(moment: datetime) -> datetime:
    return moment - (moment - EPOCH) % SLOT


def downgrade() -> None:
    _count_by(['inbox_id', 'assignee_id', 'status'])
    op.drop_index('ix_ticket_assignee_status_updated', table_name='ticket')
    op.create_index('ix_ticket_assignee_id', 'ticket', ['assignee_id'], unique=False)
    op.drop_table('ticket_pace')
