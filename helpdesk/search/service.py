"""Search keys and the queries over them: substrings of any length, Japanese without spaces.

The index (``grams``) serves terms of one character and up; a query is split into terms at
white space, and an entry, customer or ticket matches when every term matches.
"""

import json
import re
from collections.abc import Sequence
from typing import NamedTuple, cast

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import FromClause, Select
from sqlalchemy.types import Text
from sqlmodel import col

from helpdesk import normalize
from helpdesk.config import DEFAULT_REGION
from helpdesk.search import models as grams
from helpdesk.search.models import SearchEntry
from helpdesk.storage import prepared
from helpdesk.storage.bulk import insert_many
from helpdesk.storage.sessions import dialect_of

MAX_TEXT = 20_000
_TABLE = cast(Table, SearchEntry.__table__)  # type: ignore[attr-defined]
SearchRow = tuple[str, int, str, int | None]
_COLUMNS = ("kind", "ref_id", "text", "customer_id")
# 8,000 parameters a statement: under SQLite's limit (32,766 since 3.32; FTS5 trigram needs 3.34).
_ROWS_PER_STATEMENT = 2000


def fold(text_: str) -> str:
    """The search key of a text: NFKC (full and half width alike) and lower case."""
    return normalize.nfkc(text_)[:MAX_TEXT].lower()


def add(
    session: AsyncSession,
    *,
    kind: str,
    ref_id: int,
    text_: str,
    ticket_id: int | None = None,
    customer_id: int | None = None,
) -> None:
    """Index a piece of text (its key folded with NFKC and to lower case; see ``fold``)."""
    folded = fold(text_)
    if folded:
        session.add(SearchEntry(kind=kind, ref_id=ref_id, text=folded,
                                ticket_id=ticket_id, customer_id=customer_id))


class Entry(NamedTuple):
    """A text to index now (``add_now``), with what it belongs to."""

    kind: str
    ref_id: int
    text: str
    ticket_id: int | None = None
    customer_id: int | None = None


_INSERT = insert(_TABLE).values({name: bindparam(name) for name in Entry._fields})


async def add_now(session: AsyncSession, *entries: Entry) -> None:
    """``add`` for a hot path: the entries written at once, by one executemany, not at the
    next flush (each as the unit of work's own INSERT)."""
    rows = [entry._replace(text=folded)._asdict() for entry in entries if (folded := fold(entry.text))]
    await prepared.execute_many(session, _INSERT, rows)


async def add_many(session: AsyncSession, entries: Sequence[SearchRow]) -> None:
    """Index many texts at once (imports): (kind, ref_id, text, customer_id) each."""
    rows = [(kind, ref_id, folded, customer_id)
            for kind, ref_id, text_, customer_id in entries
            if (folded := fold(text_))]
    if not rows:
        return
    if dialect_of(session) != "sqlite":
        await insert_many(session, _TABLE, [dict(zip(_COLUMNS, row, strict=True)) for row in rows])
        return
    # Thousands of rows per statement, not one statement per row: the FTS5 trigger's index
    # writes stay buffered until the statement ends, where each statement of its own made FTS5
    # flush a segment and merge (46 µs a customer against 14 µs this way).
    connection = await session.connection()
    for start in range(0, len(rows), _ROWS_PER_STATEMENT):
        chunk = rows[start:start + _ROWS_PER_STATEMENT]
        await connection.exec_driver_sql(
            f"INSERT INTO search_entry ({', '.join(_COLUMNS)}) VALUES "
            + ", ".join(["(?, ?, ?, ?)"] * len(chunk)),
            tuple(value for row in chunk for value in row))


async def remove_many(session: AsyncSession, *, kind: str, ref_ids: Sequence[int]) -> None:
    """Drop the entries of many entities of one kind."""
    if ref_ids:
        await session.execute(delete(_TABLE).where(
            _TABLE.c.kind == kind, _TABLE.c.ref_id.in_(list(ref_ids))))


async def replace(
    session: AsyncSession, *, kind: str, ref_id: int, text_: str, customer_id: int | None = None
) -> None:
    """Re-index an entity whose text changed (a customer's names and contacts)."""
    await session.execute(
        delete(SearchEntry).where(col(SearchEntry.kind) == kind, col(SearchEntry.ref_id) == ref_id)
    )
    add(session, kind=kind, ref_id=ref_id, text_=text_, customer_id=customer_id)


class Term(NamedTuple):
    """One word of a query, and the spellings (``query_forms``) any of which may match it."""

    text: str
    forms: tuple[str, ...]


def query_forms(query: str, region: str) -> list[str]:
    """What to look for: the folded query in both kana, and its digits when it reads as a phone
    number (customers' readings are indexed in katakana, their numbers as national digits)."""
    folded = fold(query)
    forms = [folded, normalize.katakana(folded), normalize.hiragana(folded)]
    if _PHONE.fullmatch(folded):
        forms.append(re.sub(r"\D", "", folded))
        e164 = normalize.phone(folded, region)
        if e164:
            forms.append(normalize.phone_search_digits(e164, region))
    return list(dict.fromkeys(f for f in forms if f))


_PHONE = re.compile(r"[\d+\-() ]{4,}")


def terms(query: str, region: str = DEFAULT_REGION) -> list[Term]:
    """The terms of a query: its words, or the whole of it when it reads as a phone number."""
    folded = normalize.nfkc(query).strip()
    words = [folded] if _PHONE.fullmatch(folded) else folded.split()
    found = [Term(word, tuple(query_forms(word, region))) for word in dict.fromkeys(words)]
    return [term for term in found if term.forms]


def matching(dialect: str, query: str, region: str = DEFAULT_REGION) -> Select[SearchEntry]:
    """A select of search entries containing every term of ``query``, served by the index."""
    found = terms(query, region)
    if not found:
        return select(SearchEntry).where(col(SearchEntry.id).is_(None))
    return select(SearchEntry).where(and_(*(indexed(dialect, term) for term in found)))


def indexed(dialect: str, term: Term, table: FromClause = _TABLE) -> ColumnElement[bool]:
    """Entries of ``table`` (search_entry or an alias) containing ``term``, from the index."""
    if dialect == "sqlite":
        phrases = " OR ".join(grams.sqlite_query(form) for form in term.forms)
        fts: ColumnElement[str] = literal_column("search_gram")
        return table.c.id.in_(select(literal_column("rowid")).select_from(text("search_gram"))
                              .where(fts.op("MATCH")(bindparam(None, phrases, type_=Text))))
    return or_(*(and_(func.helpdesk_grams(table.c.text).op("@>")(
                          bindparam(None, grams.postgresql_keys(form), type_=ARRAY(Text))),
                      table.c.text.like(_pattern(form), escape="\\"))
                 for form in term.forms))


async def count(session: AsyncSession, term: Term, *, cap: int) -> int:
    """About how many entries hold ``term``, at most ``cap + 1``: on SQLite counted from the
    index alone, on PostgreSQL the planner's estimate from the index's statistics (counting
    there would read every matching row)."""
    if dialect_of(session) == "sqlite":
        phrases = " OR ".join(grams.sqlite_query(form) for form in term.forms)
        return int(await session.scalar(text(
            "SELECT count(*) FROM (SELECT 1 FROM search_gram WHERE search_gram MATCH :q LIMIT :n)"
        ).bindparams(q=phrases, n=cap + 1)) or 0)
    keys = or_(*(func.helpdesk_grams(_TABLE.c.text).op("@>")(
        bindparam(None, grams.postgresql_keys(form), type_=ARRAY(Text))) for form in term.forms))
    query = select(literal_column("1")).select_from(_TABLE).where(keys).compile(
        session.get_bind(), compile_kwargs={"literal_binds": True})
    plan = await session.scalar(text(f"EXPLAIN (FORMAT JSON) {query}"))
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return min(cap + 1, int(plan[0]["Plan"]["Plan Rows"]))


def contains(dialect: str, table: FromClause, term: Term) -> ColumnElement[bool]:
    """Entries of ``table`` containing ``term``, checked row by row (for a few rows at hand).

    A plain substring search (``instr``, ``strpos``) rather than ``LIKE``'s pattern matching:
    keys and terms are both folded already, so the two agree, and the search is the cheaper."""
    find = func.instr if dialect == "sqlite" else func.strpos
    return or_(*(find(table.c.text, bindparam(None, form, type_=Text)) > 0 for form in term.forms))


def entries() -> FromClause:
    """A fresh alias of the search entries, for subqueries correlated with another table."""
    return _TABLE.alias()


def _pattern(form: str) -> str:
    return "%" + re.sub(r"([\\%_])", r"\\\1", form) + "%"
