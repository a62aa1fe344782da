"""A process's own commits reach its sockets' queues as the commit completes, framed as stored;
another process's reach them from the log, the audiences re-read only when access changed."""

import json
from collections.abc import Iterable

from sqlalchemy import event as sa_event
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.models import Role, User
from helpdesk.realtime import log as events
from helpdesk.realtime import presence
from helpdesk.realtime.audiences import audiences
from helpdesk.realtime.bus import MemoryBus
from helpdesk.realtime.frames import Audience, LiveEvent
from helpdesk.realtime.hub import Hub
from helpdesk.realtime.log import LocalEvents, event_sessions, publish_to
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import queries as ticket_queries
from tests.support.server import make_settings
from tests.support.staff import Staff
from tests.support.waiting import wait_until


async def test_an_own_commit_is_queued_before_the_committer_goes_on(
        engine: AsyncEngine, database_url: str, staff: Staff) -> None:
    supervisor = await staff.create("sv", Role.supervisor)
    assert supervisor.id is not None
    bus, local = MemoryBus(), LocalEvents()
    writers = event_sessions(engine, publish=publish_to(local, bus.notify))
    hub = Hub(bus=bus, sessionmaker=writers, read_sessionmaker=event_sessions(engine, read_only=True),
              settings=make_settings(database_url), node="test", ticket_inbox=ticket_queries.inbox_of,
              audiences=audiences, presence_heartbeat=presence.heartbeat_and_sweep, local=local)
    await hub.start()
    try:
        client = await hub.join(user_id=supervisor.id, name="sv", audience=Audience(supervisor.id, True))

        async def commit(n: int) -> list[str]:
            """Commit event ``n``; the frames queued for the socket right after the commit."""
            async with writers() as session:
                events.record(session, type="ticket.updated", data={"n": n}, broadcast=True)
                await session.commit()
                return [text for _, text in list(client.queue._queue)]  # type: ignore[attr-defined]

        await commit(1)  # the first goes through the pump, which reads the sockets' audiences
        await wait_until(lambda: client.queue.qsize() == 1)
        second = await commit(2)
        third = await commit(3)
    finally:
        await hub.stop()
    # Queued before the committing code yielded to the loop even once.
    assert len(second) == 2 and '"n":2' in second[1], second
    assert len(third) == 3 and '"n":3' in third[2], third


async def test_the_data_is_encoded_once_for_the_log_and_the_frame(engine: AsyncEngine) -> None:
    own: list[LiveEvent] = []
    writers = event_sessions(engine, publish=own.extend)
    data = {"件名": "返品について", "amount": 1.5, "items": [1, None, True], "quote": 'a "b"\n'}
    async with writers() as session:
        events.record(session, type="ticket.updated", data=data, broadcast=True)
        await session.commit()
    [mine] = own
    async with event_sessions(engine, read_only=True)() as session:
        [logged] = await events.live_events_after(session, mine.seq - 1)
        stored = (await session.execute(text("SELECT CAST(data AS TEXT) FROM event WHERE seq = :seq"),
                                        {"seq": mine.seq})).scalar_one()
    compact = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    assert stored == compact  # the frame's own text, not a second (ASCII-escaped) encoding
    assert logged.data == data
    assert mine.text == logged.text  # a replayed frame is the live one, byte for byte
    assert json.loads(mine.text) == {"seq": mine.seq, "type": "ticket.updated",
                                     "at": mine.at.isoformat(), "data": data}


async def test_another_process_s_events_reread_audiences_only_after_an_access_change(
        engine: AsyncEngine, database_url: str, staff: Staff) -> None:
    operator = await staff.create("op", Role.operator, inboxes=["default"])
    assert operator.id is not None
    reads: list[list[int]] = []

    async def counted_audiences(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, Audience]:
        reads.append(sorted(user_ids))
        return await audiences(session, user_ids)

    bus = MemoryBus()
    elsewhere = event_sessions(engine)  # another process's commits: only the log has them
    hub = Hub(bus=bus, sessionmaker=event_sessions(engine), settings=make_settings(database_url),
              read_sessionmaker=event_sessions(engine, read_only=True), node="test",
              ticket_inbox=ticket_queries.inbox_of, audiences=counted_audiences,
              presence_heartbeat=presence.heartbeat_and_sweep, local=LocalEvents())
    await hub.start()
    try:
        client = await hub.join(user_id=operator.id, name="op", audience=Audience(operator.id, False))

        async def commit_elsewhere(n: int) -> None:
            async with elsewhere() as session:
                await begin_write(session)
                events.record(session, type="ticket.updated", data={"n": n}, broadcast=True)
                await session.commit()
                bus.notify(await events.highest_seq(session))

        for n in (1, 2, 3):
            await commit_elsewhere(n)
            await wait_until(lambda n=n: client.queue.qsize() == n)
        assert reads == [[operator.id]]  # the first batch only: nobody's access changed since
        async with elsewhere() as session:
            await begin_write(session)
            await session.execute(update(User).where(User.id == operator.id)  # type: ignore[arg-type]
                                  .values(role=Role.supervisor))
            await session.commit()
        await commit_elsewhere(4)
        await wait_until(lambda: client.queue.qsize() == 4)
        assert reads == [[operator.id], [operator.id]]
        assert client.audience.sees_everything
    finally:
        await hub.stop()


async def test_a_hub_without_sockets_reads_no_events_and_the_next_socket_starts_at_the_end(
        engine: AsyncEngine, database_url: str, staff: Staff) -> None:
    supervisor = await staff.create("sv", Role.supervisor)
    assert supervisor.id is not None
    bus = MemoryBus()
    elsewhere = event_sessions(engine)
    hub = Hub(bus=bus, sessionmaker=event_sessions(engine), settings=make_settings(database_url),
              read_sessionmaker=event_sessions(engine, read_only=True), node="test",
              ticket_inbox=ticket_queries.inbox_of, audiences=audiences,
              presence_heartbeat=presence.heartbeat_and_sweep, local=LocalEvents())
    reads: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "FROM event" in statement:
            reads.append(statement)

    async def commit_elsewhere(n: int) -> int:
        async with elsewhere() as session:
            await begin_write(session)
            events.record(session, type="ticket.updated", data={"n": n}, broadcast=True)
            await session.commit()
            seq = await events.highest_seq(session)
        reads.clear()  # what the commit's own session read
        bus.notify(seq)
        return seq

    await hub.start()
    sa_event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        for n in (1, 2, 3):
            await commit_elsewhere(n)
            await hub.catch_up()  # as the pump would on this news or on its poll
            assert reads == [] and not hub.ready
        client = await hub.join(user_id=supervisor.id, name="sv", audience=Audience(supervisor.id, True))
        assert reads and hub.ready  # the join read where the log's settled end is
        fourth = await commit_elsewhere(4)
        await wait_until(lambda: client.queue.qsize() == 1)
        [(seq, frame)] = list(client.queue._queue)  # type: ignore[attr-defined]
        assert seq == fourth and '"n":4' in frame  # nothing from before it joined
    finally:
        sa_event.remove(engine.sync_engine, "before_cursor_execute", note)
        await hub.stop()
