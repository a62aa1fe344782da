"""one delivery_receipt table in place of webhook_receipt and order_delivery

Revision ID: 0007
Revises: 0006
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('delivery_receipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('received_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_receipt')),
    sa.UniqueConstraint('provider', 'delivery_id', name=op.f('uq_delivery_receipt_provider_delivery_id'))
    )
    with op.batch_alter_table('delivery_receipt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_delivery_receipt_received_at'), ['received_at'], unique=False)
    op.execute("INSERT INTO delivery_receipt (provider, delivery_id, received_at) "
               "SELECT provider, event_id, received_at FROM webhook_receipt ORDER BY id")
    # Both tables were keyed per provider; a key in both (never written so) is kept once.
    op.execute("INSERT INTO delivery_receipt (provider, delivery_id, received_at) "
               "SELECT source, delivery_id, received_at FROM order_delivery AS o "
               "WHERE NOT EXISTS (SELECT 1 FROM delivery_receipt AS d "
               "WHERE d.provider = o.source AND d.delivery_id = o.delivery_id) ORDER BY o.id")
    op.drop_table('webhook_receipt')
    op.drop_table('order_delivery')


def downgrade() -> None:
    op.create_table('order_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('received_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_delivery')),
    sa.UniqueConstraint('source', 'delivery_id', name=op.f('uq_order_delivery_source_delivery_id'))
    )
    op.create_table('webhook_receipt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('received_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_receipt')),
    sa.UniqueConstraint('provider', 'event_id', name=op.f('uq_webhook_receipt_provider_event_id'))
    )
    # Shopify's deliveries were the orders' table; every other provider's the channels' one.
    op.execute("INSERT INTO order_delivery (source, delivery_id, received_at) "
               "SELECT provider, delivery_id, received_at FROM delivery_receipt "
               "WHERE provider = 'shopify' AND LENGTH(delivery_id) <= 100 ORDER BY id")
    op.execute("INSERT INTO webhook_receipt (provider, event_id, received_at) "
               "SELECT provider, delivery_id, received_at FROM delivery_receipt "
               "WHERE provider <> 'shopify' ORDER BY id")
    with op.batch_alter_table('delivery_receipt', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_delivery_receipt_received_at'))
    op.drop_table('delivery_receipt')
