"""message: why a reply was not delivered, earlier texts of an edited message, reactions

Revision ID: 0015
Revises: 0013
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0015'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('message', sa.Column(
        'delivery_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True))
    op.add_column('message', sa.Column('history', sa.JSON(), nullable=True))
    op.add_column('message', sa.Column('reactions', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('message') as batch:
        batch.drop_column('reactions')
        batch.drop_column('history')
        batch.drop_column('delivery_error')
