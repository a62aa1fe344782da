"""orders found by number through their own index rather than the search index

Revision ID: 0009
Revises: 0007
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0009'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.create_index('ix_order_number', ['number'], unique=False)
    op.execute("DELETE FROM search_entry WHERE kind = 'order'")


def downgrade() -> None:
    op.execute("INSERT INTO search_entry (kind, ref_id, text, customer_id) "
               "SELECT 'order', id, number, customer_id FROM \"order\"")
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_index('ix_order_number')
