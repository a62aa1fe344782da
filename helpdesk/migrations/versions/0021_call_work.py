"""call work: after-call work, transfers, per-inbox voice menus, recording length, callbacks

call_wrapup: one row per answered call from its hang-up; open (no ``submitted_at``) while its
operator does the after-call work, which keeps them from being offered calls.
call_transfer: a call handed to another operator or an inbox's queue, blind or after consulting.
inbox_voice: greeting, keypad menu, hold music, callback offer, closed-hours message, recording.

Revision ID: 0021
Revises: 0020
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('call') as batch:
        batch.add_column(sa.Column('recording_seconds', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('menu_tag', sqlmodel.sql.sqltypes.AutoString(length=60),
                                   nullable=True))
        batch.add_column(sa.Column('callback_result', sqlmodel.sql.sqltypes.AutoString(length=20),
                                   nullable=True))
        batch.add_column(sa.Column('callback_by', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('callback_at', helpdesk.db.UTCDateTime(timezone=True), nullable=True))
        batch.create_foreign_key(op.f('fk_call_callback_by_user'), 'user', ['callback_by'], ['id'])
    op.create_table('call_wrapup',
    sa.Column('call_ref', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('started_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('submitted_at', helpdesk.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acw_seconds', sa.Integer(), nullable=True),
    sa.Column('disposition', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('follow_up_on', sa.Date(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['call_ref'], ['call.id'], name=op.f('fk_call_wrapup_call_ref_call'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['operator_id'], ['user.id'], name=op.f('fk_call_wrapup_operator_id_user')),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], name=op.f('fk_call_wrapup_ticket_id_ticket'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('call_ref', name=op.f('pk_call_wrapup'))
    )
    op.create_index('ix_call_wrapup_operator_open', 'call_wrapup',
                    ['operator_id', 'submitted_at', 'started_at'], unique=False)
    op.create_table('call_transfer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_ref', sa.Integer(), nullable=False),
    sa.Column('from_user_id', sa.Integer(), nullable=True),
    sa.Column('to_user_id', sa.Integer(), nullable=True),
    sa.Column('to_inbox_id', sa.Integer(), nullable=True),
    sa.Column('mode', sa.String(length=5), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('notes', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
    sa.Column('from_leg', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('to_leg', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('completed_at', helpdesk.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['call_ref'], ['call.id'], name=op.f('fk_call_transfer_call_ref_call'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['from_user_id'], ['user.id'], name=op.f('fk_call_transfer_from_user_id_user')),
    sa.ForeignKeyConstraint(['to_user_id'], ['user.id'], name=op.f('fk_call_transfer_to_user_id_user')),
    sa.ForeignKeyConstraint(['to_inbox_id'], ['inbox.id'], name=op.f('fk_call_transfer_to_inbox_id_inbox')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_call_transfer'))
    )
    op.create_index('ix_call_transfer_call', 'call_transfer', ['call_ref', 'id'], unique=False)
    op.create_table('inbox_voice',
    sa.Column('inbox_id', sa.Integer(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['inbox_id'], ['inbox.id'], name=op.f('fk_inbox_voice_inbox_id_inbox'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('inbox_id', name=op.f('pk_inbox_voice'))
    )


def downgrade() -> None:
    op.drop_table('inbox_voice')
    op.drop_index('ix_call_transfer_call', table_name='call_transfer')
    op.drop_table('call_transfer')
    op.drop_index('ix_call_wrapup_operator_open', table_name='call_wrapup')
    op.drop_table('call_wrapup')
    with op.batch_alter_table('call') as batch:
        batch.drop_constraint(op.f('fk_call_callback_by_user'), type_='foreignkey')
        batch.drop_column('callback_at')
        batch.drop_column('callback_by')
        batch.drop_column('callback_result')
        batch.drop_column('menu_tag')
        batch.drop_column('recording_seconds')
