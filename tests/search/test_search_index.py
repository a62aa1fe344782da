"""Search is answered from the character-pair index, not by scanning every row."""

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.search import service as search
from helpdesk.storage.sessions import dialect_of


async def plan(db: AsyncSession, query: str) -> str:
    dialect = dialect_of(db)
    stmt = search.matching(dialect, query)
    compiled = stmt.compile(db.get_bind(), compile_kwargs={"literal_binds": True})
    if dialect == "sqlite":
        rows = await db.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
        return "\n".join(str(row[-1]) for row in rows)
    await db.execute(text("SET LOCAL enable_seqscan = off"))  # tiny tables: make the choice visible
    rows = await db.execute(text(f"EXPLAIN {compiled}"))
    return "\n".join(str(row[0]) for row in rows)


@pytest.mark.parametrize(("query", "expected"), [("湯呑み", 0), ("配送", 1), ("湯", 0), ("い", 1)])
async def test_japanese_substring_of_any_length_uses_the_index(
    db: AsyncSession, query: str, expected: int
) -> None:
    for i, body in enumerate(["注文した湯呑みが割れて届きました", "配送状況を教えてください"]):
        search.add(db, kind="message", ref_id=i, text_=body, ticket_id=i)
    await db.flush()
    found = list(await db.scalars(search.matching(dialect_of(db), query)))
    assert [e.ticket_id for e in found] == [expected]
    query_plan = await plan(db, query)
    if dialect_of(db) == "sqlite":
        assert "VIRTUAL TABLE INDEX" in query_plan, query_plan
    else:
        assert "ix_search_entry_grams" in query_plan, query_plan
    await db.rollback()


async def test_width_variants_match(db: AsyncSession) -> None:
    search.add(db, kind="message", ref_id=1, text_="ＡＢＣ１２３の注文", ticket_id=1)
    await db.flush()
    found = list(await db.scalars(search.matching(dialect_of(db), "abc123")))
    assert [e.ticket_id for e in found] == [1]
    await db.rollback()
