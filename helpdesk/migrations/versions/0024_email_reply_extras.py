"""email reply extras: Cc and Bcc on messages, signatures per inbox and per operator

message.email_cc / email_bcc: the Cc of a mail received or sent and the Bcc of a reply.
email_signature: text appended to email replies, one per inbox (shared) or operator (personal).

Revision ID: 0024
Revises: 0023
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import helpdesk.db

revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('message') as batch:
        batch.add_column(sa.Column('email_cc', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('email_bcc', sa.JSON(), nullable=True))
    op.create_table('email_signature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', helpdesk.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_email_signature')),
    sa.UniqueConstraint('scope', 'owner_id', name=op.f('uq_email_signature_scope_owner_id'))
    )


def downgrade() -> None:
    op.drop_table('email_signature')
    with op.batch_alter_table('message') as batch:
        batch.drop_column('email_bcc')
        batch.drop_column('email_cc')
