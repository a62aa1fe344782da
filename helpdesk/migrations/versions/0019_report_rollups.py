"""report rollups: per operator and inbox per day, the samples behind their medians, the state
the event log's snapshots are compared with, and the watermark of events folded in

Revision ID: 0019
Revises: 0018
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _utc() -> sa.types.TypeEngine:  # type: ignore[type-arg]
    return helpdesk.db.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('report_operator_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('handled', sa.Integer(), nullable=False),
    sa.Column('replies', sa.Integer(), nullable=False),
    sa.Column('calls_answered', sa.Integer(), nullable=False),
    sa.Column('handling_seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'user_id', 'inbox_id', name=op.f('pk_report_operator_day')),
    )
    op.create_table('report_inbox_day',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    *(sa.Column(name, sa.Integer(), nullable=False) for name in (
        'created', 'resolved', 'backlog_unhandled', 'backlog_in_progress', 'backlog_pending')),
    sa.Column('oldest_waiting_at', _utc(), nullable=True),
    *(sa.Column(name, sa.Integer(), nullable=False) for name in (
        'sla_met', 'sla_total', 'calls_offered', 'calls_answered', 'calls_abandoned',
        'calls_answered_20s')),
    sa.Column('wait_seconds', sa.Float(), nullable=False),
    sa.Column('talk_seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'inbox_id', name=op.f('pk_report_inbox_day')),
    )
    op.create_table('report_sample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('metric', sa.String(length=20), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_report_sample')),
    )
    op.create_index('ix_report_sample_metric_day', 'report_sample',
                    ['metric', 'day', 'user_id', 'seconds'])
    op.create_table('report_histogram',
    sa.Column('metric', sa.String(length=20), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('bucket', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('metric', 'day', 'user_id', 'bucket', name=op.f('pk_report_histogram')),
    )
    op.create_table('report_ticket',
    sa.Column('ticket_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=True),
    sa.Column('created_at', _utc(), nullable=False),
    sa.Column('status_since', _utc(), nullable=False),
    sa.Column('responded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('ticket_id', name=op.f('pk_report_ticket')),
    )
    op.create_index('ix_report_ticket_waiting', 'report_ticket',
                    ['inbox_id', 'status', 'status_since'])
    op.create_table('report_backlog',
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('inbox_id', 'status', name=op.f('pk_report_backlog')),
    )
    op.create_table('report_operator',
    sa.Column('user_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('call_ticket_id', sa.Integer(), nullable=True),
    sa.Column('call_ended_at', _utc(), nullable=True),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_report_operator')),
    )


    _start_from_now()


def _start_from_now() -> None:
    """On a database already in use, the rollups begin with the tickets as they stand and the
    log's current seq: the backlog is right from the first day (days before have no figures;
    `helpdesk reports rebuild` recomputes them while the log still holds their events)."""
    op.execute("INSERT INTO report_ticket (ticket_id, inbox_id, status, assignee_id, created_at, "
               "status_since, responded) SELECT id, inbox_id, status, assignee_id, created_at, "
               "updated_at, first_response_at IS NOT NULL FROM ticket")
    op.execute("INSERT INTO report_backlog (inbox_id, status, n) "
               "SELECT inbox_id, status, SUM(n) FROM ticket_count GROUP BY inbox_id, status")
    op.execute("INSERT INTO counter (name, value) "
               "SELECT 'report_applied', value FROM counter WHERE name = 'event_seq'")


def downgrade() -> None:
    op.execute("DELETE FROM counter WHERE name = 'report_applied'")
    for name in ('report_operator', 'report_backlog', 'report_ticket', 'report_histogram',
                 'report_sample',
                 'report_inbox_day', 'report_operator_day'):
        op.drop_table(name)
