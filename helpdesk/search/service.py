"""Full-text search that works for Japanese without spaces: FTS5 trigram or pg_trgm."""

import re
from collections.abc import Sequence
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlmodel import col

from helpdesk import normalize
from helpdesk.config import DEFAULT_REGION
from helpdesk.search.models import SearchEntry
from helpdesk.storage.bulk import insert_many
from helpdesk.storage.sessions import dialect_of

MAX_TEXT = 20_000
_TABLE = cast(Table, SearchEntry.__table__)  # type: ignore[attr-defined]
SearchRow = tuple[str, int, str, int | None]
_COLUMNS = ("kind", "ref_id", "text", "customer_id")
# 8,000 parameters a statement: under SQLite's limit (32,766 since 3.32; FTS5 trigram needs 3.34).
_ROWS_PER_STATEMENT = 2000


def add(
    session: AsyncSession,
    *,
    kind: str,
    ref_id: int,
    text_: str,
    ticket_id: int | None = None,
    customer_id: int | None = None,
) -> None:
    """Index a piece of text (normalised with NFKC so full/half width match)."""
    folded = normalize.nfkc(text_)[:MAX_TEXT]
    if folded:
        session.add(SearchEntry(kind=kind, ref_id=ref_id, text=folded,
                                ticket_id=ticket_id, customer_id=customer_id))


async def add_many(session: AsyncSession, entries: Sequence[SearchRow]) -> None:
    """Index many texts at once (imports): (kind, ref_id, text, customer_id) each."""
    rows = [(kind, ref_id, folded, customer_id)
            for kind, ref_id, text_, customer_id in entries
            if (folded := normalize.nfkc(text_)[:MAX_TEXT])]
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


def query_forms(query: str, region: str) -> list[str]:
    """What to look for: the folded query in both kana, and its digits when it reads as a phone
    number (customers' readings are indexed in katakana, their numbers as national digits)."""
    folded = normalize.nfkc(query)
    forms = [folded, normalize.katakana(folded), normalize.hiragana(folded)]
    if re.fullmatch(r"[\d+\-() ]{4,}", folded):
        forms.append(re.sub(r"\D", "", folded))
        e164 = normalize.phone(folded, region)
        if e164:
            forms.append(normalize.phone_search_digits(e164, region))
    return list(dict.fromkeys(f for f in forms if f))


def matching(dialect: str, query: str, region: str = DEFAULT_REGION) -> Select[SearchEntry]:
    """A select of search entries matching ``query`` by substring, served by the trigram index."""
    clauses = [_substring_clause(dialect, form) for form in query_forms(query, region)]
    return select(SearchEntry).where(or_(*clauses))


def _substring_clause(dialect: str, form: str) -> ColumnElement[bool]:
    if dialect == "sqlite" and len(form) >= 3:
        # The trigram tokenizer answers a quoted phrase as a substring match from the index.
        phrase = '"' + form.replace('"', '""') + '"'
        fts: ColumnElement[str] = literal_column("search_entry_fts")
        return col(SearchEntry.id).in_(
            select(literal_column("rowid")).select_from(text("search_entry_fts"))
            .where(fts.op("MATCH")(phrase))
        )
    pattern = "%" + re.sub(r"([\\%_])", r"\\\1", form) + "%"
    return col(SearchEntry.text).ilike(pattern, escape="\\")
