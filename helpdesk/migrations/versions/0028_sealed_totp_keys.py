"""TOTP keys sealed at rest

``user.totp_secret`` (the authenticator app's key, stored as it was) gives way to ``totp_key``,
long enough for the key sealed under ``HELPDESK_SECRET_KEY`` (``auth.sealing``). The migration
cannot seal (it does not know the secret key): it copies the keys across, and the app seals each
one that is not sealed yet when it starts. A new column rather than a wider one, because SQLite
would rebuild the ``user`` table to widen it, and other tables refer to that one.

Revision ID: 0028
Revises: 0027
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0028'
down_revision: str | None = '0027'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('user', sa.Column('totp_key', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
    op.execute('UPDATE "user" SET totp_key = totp_secret WHERE totp_secret IS NOT NULL')
    op.drop_column('user', 'totp_secret')


def downgrade() -> None:
    # A sealed key does not fit the old column and cannot be opened here: two-factor sign-in is
    # turned off for those users (their recovery codes go too); they set it up again.
    op.add_column('user', sa.Column('totp_secret', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    op.execute('UPDATE "user" SET totp_secret = totp_key WHERE totp_key NOT LIKE \'v1:%\'')
    op.execute('UPDATE "user" SET totp_enabled_at = NULL, totp_last_step = NULL '
               'WHERE totp_key LIKE \'v1:%\'')
    op.execute('DELETE FROM recovery_code WHERE user_id IN '
               '(SELECT id FROM "user" WHERE totp_key LIKE \'v1:%\')')
    op.drop_column('user', 'totp_key')
