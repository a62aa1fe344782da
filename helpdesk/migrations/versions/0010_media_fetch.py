"""media_fetch: content users sent (LINE photos…) still to be downloaded

Revision ID: 0010
Revises: 0009
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('media_fetch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('media_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('next_attempt_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['message.id'], name=op.f('fk_media_fetch_message_id_message'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_media_fetch')),
    sa.UniqueConstraint('message_id', name=op.f('uq_media_fetch_message_id'))
    )
    with op.batch_alter_table('media_fetch', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_media_fetch_next_attempt_at'), ['next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('media_fetch', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_media_fetch_next_attempt_at'))
    op.drop_table('media_fetch')
