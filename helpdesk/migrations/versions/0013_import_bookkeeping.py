"""import bookkeeping: identity_version, and purchase_recount for orders counted at an import's end

identity_version: any update or delete of a customer identity (a merge moves them, a deleted customer takes them
along) sets the ``identity_version`` counter to a fresh random value, in the same transaction,
whoever makes the change. An import remembers which customer owns each email and phone across
its batches, and starts afresh when the counter moved. New identities leave it alone: they
cannot take an identity that already has an owner.

purchase_recount: an import adds its new orders to their customers' counts and totals once, at
its end; the row it keeps meanwhile says which orders (ids above ``after_order_id``) are still
to count, should the import die before it gets there.

Revision ID: 0013
Revises: 0012
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import helpdesk

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SQLITE = [("identity_version_update", "UPDATE"), ("identity_version_delete", "DELETE")]


def upgrade() -> None:
    op.create_table('purchase_recount',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('after_order_id', sa.Integer(), nullable=False),
    sa.Column('beat_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_purchase_recount')),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION bump_identity_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO counter (name, value) VALUES ('identity_version', 0)
                    ON CONFLICT (name) DO NOTHING;
                UPDATE counter SET value = floor(random() * 9007199254740991)::bigint
                    WHERE name = 'identity_version';
                RETURN NULL;
            END $$""")
        op.execute("CREATE TRIGGER identity_version AFTER UPDATE OR DELETE OR TRUNCATE "
                   "ON customer_identity FOR EACH STATEMENT EXECUTE FUNCTION bump_identity_version()")
    else:
        for name, event in _SQLITE:
            op.execute(f"""
                CREATE TRIGGER {name} AFTER {event} ON customer_identity BEGIN
                    INSERT OR IGNORE INTO counter (name, value) VALUES ('identity_version', 0);
                    UPDATE counter SET value = random() WHERE name = 'identity_version';
                END""")
    op.execute("INSERT INTO counter (name, value) VALUES ('identity_version', 1)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER identity_version ON customer_identity")
        op.execute("DROP FUNCTION bump_identity_version()")
    else:
        for name, _ in _SQLITE:
            op.execute(f"DROP TRIGGER {name}")
    op.execute("DELETE FROM counter WHERE name = 'identity_version'")
    op.drop_table('purchase_recount')
