"""access_version: a counter that changes whenever who-may-see-what changes

Any insert, delete or update of an inbox membership, and any new, deleted, re-roled or
(de)activated user, sets the ``access_version`` counter to a fresh random value, in the same
transaction, whoever makes the change (the app, the CLI, plain SQL). The realtime hub reads it
to know whether the audiences it holds are still current. Random rather than incremented: a
counter that was emptied and started again must never repeat a value a hub still holds.

Revision ID: 0011
Revises: 0010
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (trigger name, table, event) for SQLite, which has one event per trigger.
_SQLITE = [
    ("access_version_member_insert", "inbox_member", "INSERT"),
    ("access_version_member_update", "inbox_member", "UPDATE"),
    ("access_version_member_delete", "inbox_member", "DELETE"),
    ("access_version_user_insert", '"user"', "INSERT"),
    ("access_version_user_update", '"user"', "UPDATE OF role, is_active"),
    ("access_version_user_delete", '"user"', "DELETE"),
]
_POSTGRESQL = [
    ("access_version_member", "inbox_member", "INSERT OR UPDATE OR DELETE OR TRUNCATE"),
    ("access_version_user", '"user"', "INSERT OR DELETE OR TRUNCATE OR UPDATE OF role, is_active"),
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("""
            CREATE FUNCTION bump_access_version() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO counter (name, value) VALUES ('access_version', 0)
                    ON CONFLICT (name) DO NOTHING;
                UPDATE counter SET value = floor(random() * 9007199254740991)::bigint
                    WHERE name = 'access_version';
                RETURN NULL;
            END $$""")
        for name, table, events in _POSTGRESQL:
            op.execute(f"CREATE TRIGGER {name} AFTER {events} ON {table} "
                       "FOR EACH STATEMENT EXECUTE FUNCTION bump_access_version()")
    else:
        for name, table, event in _SQLITE:
            op.execute(f"""
                CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN
                    INSERT OR IGNORE INTO counter (name, value) VALUES ('access_version', 0);
                    UPDATE counter SET value = random() WHERE name = 'access_version';
                END""")
    op.execute("INSERT INTO counter (name, value) VALUES ('access_version', 1)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, table, _ in _POSTGRESQL:
            op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute("DROP FUNCTION bump_access_version()")
    else:
        for name, _, _ in _SQLITE:
            op.execute(f"DROP TRIGGER {name}")
    op.execute("DELETE FROM counter WHERE name = 'access_version'")
