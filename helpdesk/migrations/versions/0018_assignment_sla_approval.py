"""assignment, SLA and approval: policies per inbox, SLA settings, due times, ticket history

ticket gains its due times (first response, next response, resolution), the soonest running
one (``sla_due_at``, the inbox sorts by it) and the soonest not yet reported (``sla_check_at``,
the breach job looks for it), the breaches reported and when 保留 paused the clock. message
gains its approval status and the supervisor's comment. ticket_history keeps assignments with
their reasons, status changes, breaches and approvals per ticket.

Revision ID: 0018
Revises: 0016
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk

revision: str = '0018'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DUE_COLUMNS = ('first_response_due_at', 'next_response_due_at', 'resolution_due_at',
                'sla_due_at', 'sla_check_at', 'sla_paused_at')


def upgrade() -> None:
    for name in _DUE_COLUMNS:
        op.add_column('ticket', sa.Column(name, helpdesk.db.UTCDateTime(timezone=True), nullable=True))
    op.add_column('ticket', sa.Column('sla_breached', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.add_column('ticket', sa.Column('sla_breaches', sa.String(length=60), nullable=False,
                                      server_default=''))
    op.create_index(op.f('ix_ticket_sla_due_at'), 'ticket', ['sla_due_at'])
    op.create_index(op.f('ix_ticket_sla_check_at'), 'ticket', ['sla_check_at'])
    op.add_column('message', sa.Column('approval_status', sa.String(length=10), nullable=True))
    op.add_column('message', sa.Column('approval_comment', sa.Text(), nullable=True))
    op.create_index(op.f('ix_message_approval_status'), 'message', ['approval_status'])
    op.create_table('sla_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sla_settings')),
    )
    op.create_table('ticket_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_ticket_history_ticket_id_ticket'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ticket_history')),
    )
    op.create_index('ix_ticket_history_ticket', 'ticket_history', ['ticket_id', 'id'])
    op.create_index('ix_ticket_history_type_at', 'ticket_history', ['type', 'at'])
    op.create_table('assignment_policy',
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('policy', sa.String(length=20), nullable=False),
    sa.Column('sticky', sa.Boolean(), nullable=False),
    sa.Column('offline_grace_seconds', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.JSON(), nullable=False),
    sa.Column('weights', sa.JSON(), nullable=False),
    sa.Column('last_user_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inbox_id'], ['inbox.id'], name=op.f('fk_assignment_policy_inbox_id_inbox'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('inbox_id', name=op.f('pk_assignment_policy')),
    )
    op.create_table('approval_policy',
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('required_for', sa.JSON(), nullable=False),
    sa.Column('updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inbox_id'], ['inbox.id'], name=op.f('fk_approval_policy_inbox_id_inbox'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('inbox_id', name=op.f('pk_approval_policy')),
    )


def downgrade() -> None:
    op.drop_table('approval_policy')
    op.drop_table('assignment_policy')
    op.drop_index('ix_ticket_history_type_at', table_name='ticket_history')
    op.drop_index('ix_ticket_history_ticket', table_name='ticket_history')
    op.drop_table('ticket_history')
    op.drop_table('sla_settings')
    op.drop_index(op.f('ix_message_approval_status'), table_name='message')
    op.drop_index(op.f('ix_ticket_sla_check_at'), table_name='ticket')
    op.drop_index(op.f('ix_ticket_sla_due_at'), table_name='ticket')
    with op.batch_alter_table('message') as batch_op:
        batch_op.drop_column('approval_comment')
        batch_op.drop_column('approval_status')
    with op.batch_alter_table('ticket') as batch_op:
        for name in (*_DUE_COLUMNS, 'sla_breached', 'sla_breaches'):
            batch_op.drop_column(name)
