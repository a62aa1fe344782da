"""Full-text search that works for Japanese without spaces: FTS5 trigram or pg_trgm."""

import re
from collections.abc import Sequence
from typing import cast

from sqlalchemy import ColumnElement, Table, delete, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from sqlmodel import col

from helpdesk import normalize
from helpdesk.db import insert_many
from helpdesk.search.models import SearchEntry

MAX_TEXT = 20_000
_TABLE = cast(Table, SearchEntry.__table__)  # type: ignore[attr-defined]
SearchRow = tuple[str, int, str, int | None]


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
    """Index many texts in one statement (imports): (kind, ref_id, text, customer_id) each."""
    rows = [{"kind": kind, "ref_id": ref_id, "text": folded, "ticket_id": None,
             "customer_id": customer_id}
            for kind, ref_id, text_, customer_id in entries
            if (folded := normalize.nfkc(text_)[:MAX_TEXT])]
    await insert_many(session, _TABLE, rows)


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
    """What to look for: the folded query, plus its E.164 form when it reads as a phone number."""
    folded = normalize.nfkc(query)
    forms = [folded]
    if re.fullmatch(r"[\d+\-() ]{4,}", folded):
        # Numbers are indexed as digits only: look for those digits, and for the E.164 form.
        forms.append(re.sub(r"\D", "", folded))
        forms.append(normalize.phone(folded, region) or "")
    return list(dict.fromkeys(f for f in forms if f))


def matching(dialect: str, query: str, region: str = "JP") -> Select[SearchEntry]:
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
