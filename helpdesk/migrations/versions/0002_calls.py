"""calls

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 13:09:04.957617
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('cti_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('blocked_caller_ids', sa.JSON(), nullable=False),
    sa.Column('routing_table', sa.JSON(), nullable=False),
    sa.Column('default_caller_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('business_hours', sa.JSON(), nullable=True),
    sa.Column('updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cti_settings'))
    )
    op.create_table('call',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('call_id', sqlmodel.sql.sqltypes.AutoString(length=250), nullable=False),
    sa.Column('direction', sa.String(length=3), nullable=False),
    sa.Column('from_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('to_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('caller_e164', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('cause', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('voicemail', sa.Boolean(), nullable=False),
    sa.Column('routed', sa.String(length=10), nullable=True),
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('queue', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('user_label', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('offered_user_ids', sa.JSON(), nullable=False),
    sa.Column('last_sequence', sa.Integer(), nullable=False),
    sa.Column('started_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('answered_at', helpdesk.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', helpdesk.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('recording_url', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], name=op.f('fk_call_customer_id_customer'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['inbox_id'], ['inbox.id'], name=op.f('fk_call_inbox_id_inbox')),
    sa.ForeignKeyConstraint(['operator_id'], ['user.id'], name=op.f('fk_call_operator_id_user')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_call_ticket_id_ticket'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call')),
    sa.UniqueConstraint('provider', 'call_id', name=op.f('uq_call_provider_call_id'))
    )
    with op.batch_alter_table('call', schema=None) as batch_op:
        batch_op.create_index('ix_call_customer_started', ['customer_id', 'started_at'], unique=False)
        batch_op.create_index('ix_call_inbox_id_desc', ['inbox_id', 'id'], unique=False)
        batch_op.create_index('ix_call_operator_answered', ['operator_id', 'answered_at'], unique=False)
        batch_op.create_index('ix_call_state_operator', ['state', 'operator_id'], unique=False)

    op.create_table('call_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_ref', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=True),
    sa.Column('at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_ref'], ['call.id'], name=op.f('fk_call_event_call_ref_call'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_event')),
    sa.UniqueConstraint('call_ref', 'key', name=op.f('uq_call_event_call_ref_key'))
    )


def downgrade() -> None:
    op.drop_table('call_event')
    with op.batch_alter_table('call', schema=None) as batch_op:
        batch_op.drop_index('ix_call_state_operator')
        batch_op.drop_index('ix_call_operator_answered')
        batch_op.drop_index('ix_call_inbox_id_desc')
        batch_op.drop_index('ix_call_customer_started')

    op.drop_table('call')
    op.drop_table('cti_settings')
