"""search by character pairs: short Japanese words served by an index

SQLite: the trigram FTS5 table gives way to ``search_gram`` (contentless FTS5 over each entry's
character pairs, written by triggers through ``helpdesk_grams``). PostgreSQL: the pg_trgm index
gives way to a GIN index over ``helpdesk_grams(text)``. Search keys are lower-cased (customer text
itself is untouched: these are the folded copies), and a partial index finds a customer's own
entry without walking the entries of their messages.

Revision ID: 0025
Revises: 0024
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from helpdesk.search.models import POSTGRESQL_FUNCTION

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000
_OLD_TRIGGERS = ("search_entry_ai", "search_entry_ad", "search_entry_au")
_NEW_TRIGGERS = ("search_gram_ai", "search_gram_ad", "search_gram_au")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for trigger in _OLD_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_entry_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_entry_text_trgm")
    _lower_case_keys()
    if sqlite:
        _sqlite_grams()
    else:
        op.execute(POSTGRESQL_FUNCTION)
        # A short pending list: every query reads all of it, and a write that fills it merges it.
        op.execute("CREATE INDEX ix_search_entry_grams ON search_entry "
                   "USING gin (helpdesk_grams(text)) WITH (gin_pending_list_limit = 256)")
    op.create_index("ix_search_entry_customer_only", "search_entry", ["customer_id"],
                    sqlite_where=sa.text("ticket_id IS NULL"),
                    postgresql_where=sa.text("ticket_id IS NULL"))


def _lower_case_keys() -> None:
    # In batches by id, in Python: SQLite's lower() folds ASCII only, and search folds all.
    bind = op.get_bind()
    last = 0
    while True:
        rows = bind.execute(sa.text("SELECT id, text FROM search_entry WHERE id > :last "
                                    "ORDER BY id LIMIT :n"), {"last": last, "n": BATCH}).all()
        if not rows:
            return
        changed = [{"i": i, "t": t.lower()} for i, t in rows if t != t.lower()]
        if changed:
            bind.execute(sa.text("UPDATE search_entry SET text = :t WHERE id = :i"), changed)
        last = rows[-1][0]


def _sqlite_grams() -> None:
    op.execute("CREATE VIRTUAL TABLE search_gram USING fts5("
               "grams, content='', columnsize=0, tokenize='ascii')")
    op.execute("CREATE TRIGGER search_gram_ai AFTER INSERT ON search_entry BEGIN "
               "INSERT INTO search_gram(rowid, grams) VALUES (new.id, helpdesk_grams(new.text)); END")
    op.execute("CREATE TRIGGER search_gram_ad AFTER DELETE ON search_entry BEGIN "
               "INSERT INTO search_gram(search_gram, rowid, grams) "
               "VALUES ('delete', old.id, helpdesk_grams(old.text)); END")
    op.execute("CREATE TRIGGER search_gram_au AFTER UPDATE OF text ON search_entry BEGIN "
               "INSERT INTO search_gram(search_gram, rowid, grams) "
               "VALUES ('delete', old.id, helpdesk_grams(old.text)); "
               "INSERT INTO search_gram(rowid, grams) VALUES (new.id, helpdesk_grams(new.text)); END")
    bind = op.get_bind()
    last = 0
    while True:
        top = bind.execute(sa.text("SELECT max(id) FROM (SELECT id FROM search_entry WHERE id > :last "
                                   "ORDER BY id LIMIT :n)"), {"last": last, "n": BATCH}).scalar()
        if top is None:
            return
        bind.execute(sa.text("INSERT INTO search_gram(rowid, grams) SELECT id, helpdesk_grams(text) "
                             "FROM search_entry WHERE id > :last AND id <= :top"),
                     {"last": last, "top": top})
        last = top


def downgrade() -> None:
    op.drop_index("ix_search_entry_customer_only", "search_entry")
    if op.get_bind().dialect.name == "sqlite":
        for trigger in _NEW_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS search_gram")
        op.execute("CREATE VIRTUAL TABLE search_entry_fts USING fts5("
                   "text, content='search_entry', content_rowid='id', tokenize='trigram')")
        op.execute("CREATE TRIGGER search_entry_ai AFTER INSERT ON search_entry BEGIN "
                   "INSERT INTO search_entry_fts(rowid, text) VALUES (new.id, new.text); END")
        op.execute("CREATE TRIGGER search_entry_ad AFTER DELETE ON search_entry BEGIN "
                   "INSERT INTO search_entry_fts(search_entry_fts, rowid, text) "
                   "VALUES ('delete', old.id, old.text); END")
        op.execute("CREATE TRIGGER search_entry_au AFTER UPDATE ON search_entry BEGIN "
                   "INSERT INTO search_entry_fts(search_entry_fts, rowid, text) "
                   "VALUES ('delete', old.id, old.text); "
                   "INSERT INTO search_entry_fts(rowid, text) VALUES (new.id, new.text); END")
        op.execute("INSERT INTO search_entry_fts(search_entry_fts) VALUES ('rebuild')")
    else:
        op.execute("DROP INDEX IF EXISTS ix_search_entry_grams")
        op.execute("DROP FUNCTION IF EXISTS helpdesk_grams(text)")
        op.execute("CREATE INDEX ix_search_entry_text_trgm ON search_entry "
                   "USING gin (text gin_trgm_ops)")
