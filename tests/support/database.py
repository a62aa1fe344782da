"""The test database: one per run and per xdist worker, emptied before each test.

SQLite lives in the worker's own temporary folder. PostgreSQL runs take the database named by
``HELPDESK_TEST_DATABASE_URL``; under ``pytest -n`` each worker gets a database of its own beside
it (``<name>_gw0``, ``<name>_gw1``…), dropped and created again at the start of every run.
"""

import os
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel

import helpdesk.models  # noqa: F401  (every table, for reset)
from helpdesk.db import create_engine
from helpdesk.realtime import log as events
from helpdesk.realtime.log import event_sessions
from tests.support.server import forget_all_sign_in_failures

T = TypeVar("T")


def xdist_worker() -> str:
    """This process's xdist worker id (``gw0``…), or "" when the run is not distributed."""
    return os.environ.get("PYTEST_XDIST_WORKER", "")


def configured_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The database this process tests on (not yet created or migrated)."""
    url = os.environ.get("HELPDESK_TEST_DATABASE_URL")
    if not url:
        return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    worker = xdist_worker()
    if not worker:
        return url
    parsed = make_url(url)
    return parsed.set(database=f"{parsed.database}_{worker}").render_as_string(hide_password=False)


async def prepare_postgresql(url: str) -> None:
    """An empty database at ``url``: a worker's own one made anew, the shared one's schema dropped.

    Dropping the schema (not the database) keeps the plain run working where the test role may
    not create databases.
    """
    if xdist_worker():
        name = make_url(url).database
        await admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        return
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


async def admin(url: str, *statements: str) -> None:
    """Run statements outside a transaction on the server's maintenance database."""
    maintenance = make_url(url).set(database="postgres").render_as_string(hide_password=False)
    engine = create_engine(maintenance, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


async def reset(engine: AsyncEngine) -> None:
    """Empty every table and put back what the migrations seed."""
    forget_all_sign_in_failures()
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{name}"' for name in tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                await conn.execute(text(f'DELETE FROM "{name}"'))
            await conn.execute(text("INSERT INTO search_gram(search_gram) VALUES ('delete-all')"))
        await conn.execute(text(
            "INSERT INTO counter (name, value) VALUES ('event_seq', 0), ('ticket_number', 1000)"))
        await conn.execute(text(
            "INSERT INTO inbox (name, email_charset, created_at) "
            "VALUES ('default', 'utf-8', CURRENT_TIMESTAMP)"))


class Peek:
    """Reads what the server committed, each read in its own short session.

    Tests must not keep a transaction open while the server works: SQLite write transactions
    begin IMMEDIATE here, and a read left open in the arranging session would block the server.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.sessions = event_sessions(engine)

    async def scalars(self, stmt: Any) -> list[Any]:
        async with self.sessions() as session:
            return list(await session.scalars(stmt))

    async def scalar(self, stmt: Any) -> Any:
        async with self.sessions() as session:
            return await session.scalar(stmt)

    async def get(self, model: type, ident: Any) -> Any:
        async with self.sessions() as session:
            return await session.get(model, ident)

    async def frames_after(self, seq: int) -> list[dict[str, Any]]:
        """Committed events after ``seq`` as socket frames (what /ws sends)."""
        async with self.sessions() as session:
            return [{"seq": e.seq, "type": e.type, "at": e.at.isoformat(), "data": e.data}
                    for e in await events.events_after(session, seq)]

    async def last_seq(self) -> int:
        frames = await self.frames_after(0)
        return frames[-1]["seq"] if frames else 0


async def count(db: AsyncSession, model: type) -> int:
    """Rows of ``model`` now committed (the read holds no lock afterwards)."""
    await db.rollback()
    found = int(await db.scalar(select(func.count()).select_from(model)) or 0)
    await db.rollback()
    return found


async def fetch(db: AsyncSession, stmt: Any) -> list[Any]:
    """Rows read in a fresh snapshot, detached, with no transaction (and no SQLite lock) kept."""
    await db.rollback()
    items = list((await db.scalars(stmt)).all())
    db.expunge_all()
    await db.rollback()
    return items


async def get(db: AsyncSession, model: type[T], key: Any) -> T:
    found = await fetch(db, select(model).where(model.id == key))  # type: ignore[attr-defined]
    assert len(found) == 1
    result: T = found[0]
    return result
