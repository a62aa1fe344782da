"""media_fetch.media_id: room for Meta's attachment addresses (signed CDN URLs, several a message)

Revision ID: 0012
Revises: 0011
"""
from collections.abc import Sequence

import sqlmodel
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # SQLite rebuilds the table (it holds only downloads still to do); PostgreSQL alters it.
    with op.batch_alter_table("media_fetch", schema=None) as batch_op:
        batch_op.alter_column("media_id", type_=sqlmodel.sql.sqltypes.AutoString(length=4000),
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=255),
                              existing_nullable=False)


def downgrade() -> None:
    op.execute("DELETE FROM media_fetch WHERE length(media_id) > 255")
    with op.batch_alter_table("media_fetch", schema=None) as batch_op:
        batch_op.alter_column("media_id", type_=sqlmodel.sql.sqltypes.AutoString(length=255),
                              existing_type=sqlmodel.sql.sqltypes.AutoString(length=4000),
                              existing_nullable=False)
