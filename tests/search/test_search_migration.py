"""Migration 0025 indexes the entries already there, keys lower-cased, and steps back cleanly."""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command

from helpdesk.db import create_engine
from helpdesk.migrations import alembic_config
from helpdesk.realtime.log import event_sessions
from helpdesk.search import service as search
from helpdesk.search.models import SearchEntry
from tests.test_migrations import _run, scratch_database


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[str]:
    yield from scratch_database(database_url, tmp_path)


async def found(url: str, query: str) -> list[int | None]:
    engine = create_engine(url)
    dialect = engine.dialect.name
    async with event_sessions(engine, read_only=True)() as session:
        entries = await session.scalars(search.matching(dialect, query).order_by(SearchEntry.id))
        ids = [entry.ticket_id for entry in entries]
    await engine.dispose()
    return ids


def test_0025_indexes_existing_entries(scratch: str) -> None:
    config = alembic_config(scratch)
    command.upgrade(config, "0024")
    rows = ", ".join(f"('message', {i}, {i}, '{text}')" for i, text in enumerate(
        ["REFUND 返品です", "配送の件", "住所", "箱"] * 3))
    asyncio.run(_run(scratch, f"INSERT INTO search_entry (kind, ref_id, ticket_id, text) VALUES {rows}"))
    command.upgrade(config, "0025")
    assert asyncio.run(_run(scratch, "SELECT text FROM search_entry WHERE id = 1")) == [("refund 返品です",)]
    assert asyncio.run(found(scratch, "返品")) == [0, 4, 8]
    assert asyncio.run(found(scratch, "Refund")) == [0, 4, 8]
    assert asyncio.run(found(scratch, "箱")) == [3, 7, 11]
    assert asyncio.run(found(scratch, "配送 件")) == [1, 5, 9]
    command.downgrade(config, "0024")
    assert asyncio.run(_run(scratch, "SELECT count(*) FROM search_entry")) == [(12,)]
    command.upgrade(config, "0025")
    assert asyncio.run(found(scratch, "住所")) == [2, 6, 10]
