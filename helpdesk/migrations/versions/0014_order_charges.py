"""order charges and purchase flag: shipping, fees and discount as order fields; is_purchase

An order's 送料, 手数料 and 値引 (or points and coupons) are what it charged or took off besides
its items: they were listed as items before. ``is_purchase`` is false for cancelled, returned and
refunded orders, read from their status by word lists that cover the carts' spellings
(注文取消し, 取り消し, キャンセル, 返品, 返金…): statuses are kept as the cart wrote them, so
the exact-match list they were compared with missed most of them. Existing orders are
classified here from their distinct statuses.

Revision ID: 0014
Revises: 0013
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    from helpdesk.customers.orders import is_purchase

    with op.batch_alter_table('order') as batch:
        batch.add_column(sa.Column('is_purchase', sa.Boolean(), server_default=sa.true(), nullable=False))
        for name in ('shipping', 'fees', 'discount'):
            batch.add_column(sa.Column(name, sa.Numeric(14, 2), server_default='0', nullable=False))
    order = sa.table('order', sa.column('status', sa.String()), sa.column('is_purchase', sa.Boolean()))
    bind = op.get_bind()
    statuses = [row[0] for row in bind.execute(sa.select(order.c.status).distinct())]
    refused = [status for status in statuses if status is not None and not is_purchase(status)]
    for start in range(0, len(refused), 500):
        bind.execute(order.update().where(order.c.status.in_(refused[start:start + 500]))
                     .values(is_purchase=False))


def downgrade() -> None:
    with op.batch_alter_table('order') as batch:
        for name in ('discount', 'fees', 'shipping', 'is_purchase'):
            batch.drop_column(name)
