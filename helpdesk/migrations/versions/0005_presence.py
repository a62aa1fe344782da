"""presence: who is online, and the connections that say so

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 13:07:14.542552
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('presence',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('since', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_presence_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_presence'))
    )
    op.create_table('presence_connection',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('node', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('closed', sa.Boolean(), nullable=False),
    sa.Column('connected_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_presence_connection_user_id_user'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_presence_connection'))
    )
    with op.batch_alter_table('presence_connection', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_presence_connection_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_presence_connection_node'), ['node'], unique=False)
        batch_op.create_index(batch_op.f('ix_presence_connection_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('presence_connection', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_presence_connection_user_id'))
        batch_op.drop_index(batch_op.f('ix_presence_connection_node'))
        batch_op.drop_index(batch_op.f('ix_presence_connection_expires_at'))

    op.drop_table('presence_connection')
    op.drop_table('presence')
