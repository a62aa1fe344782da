"""The storage kit: how the application talks to its database beyond plain ORM sessions.

- ``context``: the typed state a session carries (instead of string keys in ``session.info``).
- ``types``: column types every table shares (UTC datetimes, enums stored as text).
- ``sessions``: the SQLite engine and its session rules: queued writers, read-only readers,
  which session to use when.
- ``sqlite``: SQLite connections that run on the event loop's thread, and the WAL checkpointer.
- ``prepared``: hot-path statements compiled once, returning one typed row class per statement.
- ``bulk``: many rows in one executemany; ``construct``: rows built without per-field cost.
- ``counters`` and ``locks``: named counters and per-key serialisation of writers.

It imports no domain package: domains import it.
"""

from sqlmodel import SQLModel

# Constraint names as the migrations spell them; set here so every table defined with the kit
# (helpdesk.storage.counters among them) gets them, whichever module is imported first.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
