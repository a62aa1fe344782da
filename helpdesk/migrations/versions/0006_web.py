"""ticket counters, reply templates, IP allow-list, indexes for the supervisor board

Revision ID: 0006
Revises: 0005
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('ticket_count',
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('assignee_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('inbox_id', 'assignee_id', 'status', name=op.f('pk_ticket_count'))
    )
    op.execute("INSERT INTO ticket_count (inbox_id, assignee_id, status, n) "
               "SELECT inbox_id, COALESCE(assignee_id, 0), status, COUNT(*) FROM ticket "
               "GROUP BY inbox_id, COALESCE(assignee_id, 0), status")
    op.create_table('reply_template',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reply_template')),
    sa.UniqueConstraint('name', name=op.f('uq_reply_template_name'))
    )
    op.create_table('ip_rule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('network', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ip_rule')),
    sa.UniqueConstraint('network', name=op.f('uq_ip_rule_network'))
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_first_response_at'), ['first_response_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_resolved_at'), ['resolved_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_resolved_at'))
        batch_op.drop_index(batch_op.f('ix_ticket_first_response_at'))
    op.drop_table('ip_rule')
    op.drop_table('reply_template')
    op.drop_table('ticket_count')
