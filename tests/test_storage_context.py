"""Sessions carry typed state: a write queue shared per sessionmaker, parts kept per session."""

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db import create_sessionmaker
from helpdesk.storage.context import session_context


@dataclass
class Pending:
    items: list[str] = field(default_factory=list)


async def test_parts_belong_to_one_session_and_follow_its_sync_session(engine: AsyncEngine) -> None:
    readers = create_sessionmaker(engine, read_only=True)
    async with readers() as one, readers() as two:
        session_context(one).part(Pending).items.append("a")
        assert session_context(one.sync_session).part(Pending).items == ["a"]
        assert session_context(two).find(Pending) is None
        assert session_context(one).drop(Pending) == Pending(["a"])
        assert session_context(one).find(Pending) is None


async def test_write_sessions_of_one_sessionmaker_share_its_queue(engine: AsyncEngine) -> None:
    writers, others = create_sessionmaker(engine), create_sessionmaker(engine)
    queues = []
    for maker in (writers, writers, others):
        session = maker()
        queues.append(session_context(session).shared.write_queue)
        await session.close()
    if engine.dialect.name != "sqlite":
        assert queues == [None, None, None]  # PostgreSQL's writers do not queue in the process
        return
    assert queues[0] is not None and queues[0] is queues[1]
    assert queues[2] is not queues[0]
