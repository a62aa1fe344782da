"""message: why a reply was not delivered, the versions of an edited message, reactions, and
the provider's own message id where the dedupe key is another (LINE)

Revision ID: 0015
Revises: 0014
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('message', sa.Column(
        'delivery_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True))
    op.add_column('message', sa.Column('history', sa.JSON(), nullable=True))
    op.add_column('message', sa.Column('reactions', sa.JSON(), nullable=True))
    op.add_column('message', sa.Column(
        'provider_message_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    op.create_index('ix_message_provider_message_id', 'message', ['provider_message_id'])


def downgrade() -> None:
    op.drop_index('ix_message_provider_message_id', table_name='message')
    with op.batch_alter_table('message') as batch:
        batch.drop_column('provider_message_id')
        batch.drop_column('reactions')
        batch.drop_column('history')
        batch.drop_column('delivery_error')
