"""Text that search looks through (one row per message, subject and customer), and its index.

A trigram index cannot answer a query shorter than three characters, and Japanese words are
often two (返品, 配送, 住所) or one. Both databases therefore index character pairs:

- SQLite: a contentless FTS5 table, ``search_gram``, whose document for an entry is the list of
  its pairs, each pair spelled as hex so no tokenizer splits or folds it. A query term is the
  phrase of its pairs (an exact substring match); a one-character term is the prefix query of its
  character, which the last-character token of each entry completes. The table is written by
  triggers calling ``helpdesk_grams``, a function registered on every SQLite connection.
- PostgreSQL: a GIN index over ``helpdesk_grams(text)``, an SQL function returning the entry's
  characters and pairs; a term asks for all of its pairs and is then checked with ``LIKE``.
"""

from typing import Any

from sqlalchemy import Column, Index, Text, event, text
from sqlalchemy.engine import Engine
from sqlmodel import Field, SQLModel

SQLITE_FUNCTION = "helpdesk_grams"
_WIDTH = 8  # hex digits of one character in UTF-32


def sqlite_document(value: str | None) -> str:
    """The FTS5 document of an entry: its pairs in order, then its last character alone."""
    if not value:
        return ""
    digits = value.encode("utf-32-be").hex()
    pairs = [digits[i:i + 2 * _WIDTH] for i in range(0, len(digits) - _WIDTH, _WIDTH)]
    pairs.append(digits[-_WIDTH:])
    return " ".join(pairs)


def sqlite_query(term: str) -> str:
    """The FTS5 query that finds entries containing ``term`` (already folded)."""
    digits = term.encode("utf-32-be").hex()
    if len(term) == 1:
        return f'"{digits}"*'
    pairs = [digits[i:i + 2 * _WIDTH] for i in range(0, len(digits) - _WIDTH, _WIDTH)]
    return '"' + " ".join(pairs) + '"'


def postgresql_keys(term: str) -> list[str]:
    """The keys an entry containing ``term`` has in its ``helpdesk_grams`` array."""
    if len(term) == 1:
        return [term]
    return sorted({term[i:i + 2] for i in range(len(term) - 1)})


# Character pairs of a text, its last character alone, and each character alone (for the
# one-character queries); GIN keeps each distinct key of a row once.
POSTGRESQL_FUNCTION = """
CREATE OR REPLACE FUNCTION helpdesk_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT array(SELECT substr(t, i, 2) FROM generate_series(1, length(t)) AS i
               UNION ALL
               SELECT substr(t, i, 1) FROM generate_series(1, length(t)) AS i)
$$
"""


@event.listens_for(Engine, "connect")
def _register(dbapi_connection: Any, _record: Any) -> None:
    # Every SQLite connection, whoever opened it: the search_entry triggers call the function,
    # and a write without it fails loudly ("no such function") rather than skipping the index.
    create_function = getattr(dbapi_connection, "create_function", None)
    if create_function is not None:
        create_function(SQLITE_FUNCTION, 1, sqlite_document, deterministic=True)


class SearchEntry(SQLModel, table=True):
    """Indexed by character pairs: FTS5 on SQLite, GIN on PostgreSQL (see this module's docstring)."""

    __tablename__ = "search_entry"
    __table_args__ = (
        # A customer's own entry, without walking the entries of their messages.
        Index("ix_search_entry_customer_only", "customer_id",
              sqlite_where=text("ticket_id IS NULL"), postgresql_where=text("ticket_id IS NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    ref_id: int = Field()
    ticket_id: int | None = Field(default=None, index=True)
    customer_id: int | None = Field(default=None, index=True)
    text: str = Field(sa_column=Column(Text, nullable=False))
