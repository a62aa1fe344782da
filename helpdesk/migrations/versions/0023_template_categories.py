"""reply templates in categories, personal (one owner) or shared; import runs

reply_template.category: a free label the composer's picker groups by.
reply_template.owner_id: the operator a personal template belongs to; NULL for a shared one.
Names are unique per owner: two operators may each keep an "お礼" of their own.
import_run: a CSV upload imported from the admin pages, its progress and then its summary.

Revision ID: 0023
Revises: 0022
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('import_run',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('filename', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('total_bytes', sa.Integer(), nullable=False),
    sa.Column('done_bytes', sa.Integer(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('summary', sa.JSON(), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('started_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', helpdesk.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_import_run_user_id_user'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_run')),
    )
    with op.batch_alter_table('reply_template') as batch:
        batch.add_column(sa.Column('category', sqlmodel.sql.sqltypes.AutoString(length=60),
                                   nullable=False, server_default=''))
        batch.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_reply_template_owner_id_user'), 'user', ['owner_id'], ['id'],
                                 ondelete='CASCADE')
        batch.drop_constraint(op.f('uq_reply_template_name'), type_='unique')
        batch.create_unique_constraint(op.f('uq_reply_template_owner_id_name'), ['owner_id', 'name'])
        batch.create_index(op.f('ix_reply_template_owner_id'), ['owner_id'], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM reply_template WHERE owner_id IS NOT NULL")
    with op.batch_alter_table('reply_template') as batch:
        batch.drop_index(op.f('ix_reply_template_owner_id'))
        batch.drop_constraint(op.f('uq_reply_template_owner_id_name'), type_='unique')
        batch.create_unique_constraint(op.f('uq_reply_template_name'), ['name'])
        batch.drop_constraint(op.f('fk_reply_template_owner_id_user'), type_='foreignkey')
        batch.drop_column('owner_id')
        batch.drop_column('category')
    op.drop_table('import_run')
