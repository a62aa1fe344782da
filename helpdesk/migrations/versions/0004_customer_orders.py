"""customer orders: webhook deliveries, RFM boundaries, order digest and platform ids

Revision ID: 0004
Revises: 0003
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('order_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('delivery_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('received_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_order_delivery')),
    sa.UniqueConstraint('source', 'delivery_id', name=op.f('uq_order_delivery_source_delivery_id'))
    )
    op.create_table('rfm_boundary',
    sa.Column('metric', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('cuts', sa.JSON(), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False),
    sa.Column('computed_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('metric', name=op.f('pk_rfm_boundary'))
    )
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('remote_updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('uq_order_source_external_id', ['source', 'external_id'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('order', schema=None) as batch_op:
        batch_op.drop_index('uq_order_source_external_id')
        batch_op.drop_column('remote_updated_at')
        batch_op.drop_column('digest')
    op.drop_table('rfm_boundary')
    op.drop_table('order_delivery')
