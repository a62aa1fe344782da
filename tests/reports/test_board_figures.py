"""The board's kept figures equal counting the tickets, through a scripted day and a rebuild.

Today's pace (``ticket_pace``) and the status counters (``ticket_count``) are kept by flush hooks
in the transaction that moves a ticket; after every step of a day of work (messages in, claims,
replies, resolutions, a reopening, a move to another inbox, a reassignment after resolving, a
merge, a deletion) they must equal what a count over the tickets gives, and the board must show
the figures worked out by hand.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.assignment import service as assignment
from helpdesk.assignment.models import AssignmentPolicy
from helpdesk.auth.models import Role, User
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime.log import event_sessions
from helpdesk.reports import service as board_service
from helpdesk.reports import tasks as report_tasks
from helpdesk.reports.calendar import ReportCalendar
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import counts, merging, pace
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, Status, Ticket, TicketCount, TicketPace, TicketUpdate
from tests.support.inbound import inbound, post_inbound
from tests.support.staff import Staff

TOKYO = ZoneInfo("Asia/Tokyo")


async def assert_kept_equal_counted(engine: AsyncEngine) -> dict[tuple[datetime, int], pace.Pace]:
    """Both kept tables equal a count over the tickets; today's pace rows are returned."""
    async with event_sessions(engine, read_only=True)() as db:
        return await _compare(db)


async def _compare(db: AsyncSession) -> dict[tuple[datetime, int], pace.Pace]:
    truth = {(inbox, assignee or 0, str(status), str(channel)): n
             for inbox, assignee, status, channel, n in (await db.execute(
                 select(Ticket.inbox_id, Ticket.assignee_id, Ticket.status, Ticket.channel, func.count())
                 .group_by(Ticket.inbox_id, Ticket.assignee_id, Ticket.status, Ticket.channel))).all()}
    kept_counts: dict[tuple[int, int, str, str], int] = {}
    for r in await db.scalars(select(TicketCount)):  # a key's shards summed
        key = (r.inbox_id, r.assignee_id, r.status, r.channel)
        kept_counts[key] = kept_counts.get(key, 0) + r.n
    assert {key: n for key, n in kept_counts.items() if n} == truth
    # The board's capacity figures, read from the counters, equal the ones assignment counts.
    assert await board_service.capacity_use(db) == await assignment.capacity_use(db)
    kept, counted = await pace.kept(db), await pace.counted(db)
    assert kept == counted
    return kept


async def change(db: AsyncSession, ticket_id: int, actor: User, **fields: object) -> None:
    await begin_write(db)
    ticket = await db.get(Ticket, ticket_id, populate_existing=True)
    assert ticket is not None
    locked = await tickets.lock_for_change(db, ticket_id, ticket.version)
    await tickets.update(db, locked, TicketUpdate(version=locked.version, **fields), actor=actor)
    await db.commit()


async def reply(db: AsyncSession, ticket_id: int, actor: User) -> None:
    await begin_write(db)
    ticket = await db.get(Ticket, ticket_id, populate_existing=True)
    assert ticket is not None
    await tickets.reply(db, ticket, body="確認いたします", internal=False, actor=actor)
    await db.commit()


async def read_board(engine: AsyncEngine, zone: ZoneInfo = TOKYO) -> board_service.Board:
    async with event_sessions(engine, read_only=True)() as db:
        return await board_service.board(db, zone=zone)


async def handled(engine: AsyncEngine, zone: ZoneInfo = TOKYO) -> dict[int, int]:
    return {op.id: op.handled_today for op in (await read_board(engine, zone)).operators}


async def test_kept_figures_follow_a_scripted_day(
        db: AsyncSession, staff: Staff, http: httpx.AsyncClient, engine: AsyncEngine) -> None:
    await begin_write(db)
    shop = await inbox_service.create_inbox(db, name="shop")
    db.add(AssignmentPolicy(inbox_id=1, policy="manual"))
    db.add(AssignmentPolicy(inbox_id=shop.id, policy="least_loaded", capacity={},
                            weights={"email": 0.2, "api": 0.5}))
    await db.commit()
    sato = await staff.create("sato", Role.operator, inboxes=["default", "shop"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default", "shop"])
    boss = await staff.create("boss", Role.supervisor)
    assert (await post_inbound(http, "web-1")).status_code == 201  # through the real API
    first = await inbound(db, "m1", email="a@example.jp")
    second = await inbound(db, "m2", email="b@example.jp")
    third = await inbound(db, "m3", email="c@example.jp")
    assert await assert_kept_equal_counted(engine) == {}

    await begin_write(db)  # claim, answer, resolve: one resolution and one first response for sato
    await tickets.claim(db, first.ticket_id, actor=sato)
    await db.commit()
    await reply(db, first.ticket_id, sato)
    await change(db, first.ticket_id, sato, status=Status.resolved)
    kept = await assert_kept_equal_counted(engine)
    assert sum(p.resolved for p in kept.values()) == 1 and sum(p.responded for p in kept.values()) == 1
    assert await handled(engine) == {sato.id: 1, suzuki.id: 0}

    await reply(db, second.ticket_id, suzuki)  # answering assigns; resolved, then the customer writes again
    await change(db, second.ticket_id, suzuki, status=Status.resolved)
    assert (await handled(engine))[suzuki.id] == 1
    await inbound(db, "m2-again", email="b@example.jp", body="まだ届きません")
    await assert_kept_equal_counted(engine)
    assert (await handled(engine))[suzuki.id] == 0  # reopened: no longer resolved today

    await reply(db, third.ticket_id, sato)  # moved to another inbox, resolved, then reassigned
    await begin_write(db)
    shop = await inbox_service.inbox_by_name(db, "shop")
    assert shop.id is not None
    await tickets.hand_over(db, third.ticket_id, inbox_id=shop.id, assignee_id=sato.id)
    await db.commit()
    await change(db, third.ticket_id, sato, status=Status.resolved)
    await change(db, third.ticket_id, boss, assignee_id=suzuki.id)
    await assert_kept_equal_counted(engine)
    assert await handled(engine) == {sato.id: 1, suzuki.id: 1}

    # A second ticket of the first customer, in the other inbox, merged into the first.
    other = await inbound(db, "m1-shop", email="a@example.jp", inbox="shop")
    await reply(db, other.ticket_id, suzuki)
    await begin_write(db)
    await merging.merge(db, first.ticket_id, other.ticket_id, actor=boss, notes=("統合", "統合済み"))
    await db.commit()
    await assert_kept_equal_counted(engine)
    assert await handled(engine) == {sato.id: 1, suzuki.id: 2}

    await begin_write(db)  # a ticket added and deleted outside the services
    now = datetime.now(UTC)
    extra = Ticket(number=9001, channel=Channel.email, inbox_id=1, token="t9001", assignee_id=sato.id,
                   status=Status.resolved, created_at=now - timedelta(hours=2), resolved_at=now,
                   first_response_at=now - timedelta(hours=1))
    db.add(extra)
    await db.commit()
    assert (await handled(engine))[sato.id] == 2
    await begin_write(db)
    await db.delete(extra)
    await db.commit()
    await assert_kept_equal_counted(engine)
    assert await handled(engine) == {sato.id: 1, suzuki.id: 2}


async def test_kept_figures_survive_a_rebuild_and_a_recount(
        db: AsyncSession, staff: Staff, engine: AsyncEngine) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    for n in range(3):
        result = await inbound(db, f"r{n}", email=f"r{n}@example.jp")
        await reply(db, result.ticket_id, sato)
        if n:
            await change(db, result.ticket_id, sato, status=Status.resolved)
    before = await assert_kept_equal_counted(engine)
    board_before = await read_board(engine)

    await report_tasks.rebuild(event_sessions(engine), ReportCalendar(zone=TOKYO))
    await begin_write(db)
    await counts.recount(db)
    await db.commit()
    assert await assert_kept_equal_counted(engine) == before
    after = await read_board(engine)
    assert after.operators == board_before.operators
    mine = next(op for op in after.operators if op.id == sato.id)
    assert (mine.handled_today, mine.load["in_progress"]) == (2, 1)
    assert mine.first_response_seconds is not None and mine.handling_seconds is not None


async def test_today_starts_at_the_viewers_midnight_in_any_time_zone(
        db: AsyncSession, staff: Staff, engine: AsyncEngine) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    sato_id, now = sato.id, datetime.now(UTC)
    await begin_write(db)
    for n, hours_ago in enumerate((1, 5, 11, 17, 23, 30, 40)):
        done = now - timedelta(hours=hours_ago, minutes=7 * n)
        db.add(Ticket(number=9100 + n, channel=Channel.email, inbox_id=1, token=f"z{n}",
                      assignee_id=sato.id, status=Status.resolved, created_at=done - timedelta(hours=3),
                      first_response_at=done - timedelta(hours=2), resolved_at=done))
    await db.commit()
    await assert_kept_equal_counted(engine)
    for zone in ("Asia/Tokyo", "Asia/Kathmandu", "Asia/Kolkata", "America/St_Johns", "Pacific/Kiritimati",
                 "Pacific/Pago_Pago"):
        midnight = board_service.start_of_day(ZoneInfo(zone))
        expected = int(await db.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.resolved_at >= midnight, Ticket.assignee_id == sato_id)) or 0)
        await db.rollback()
        assert (await handled(engine, ZoneInfo(zone)))[sato_id] == expected, zone


async def test_resolutions_before_the_horizon_are_not_kept(
        db: AsyncSession, staff: Staff, engine: AsyncEngine) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    now = datetime.now(UTC)
    await begin_write(db)
    old = now - pace.HORIZON - timedelta(hours=1)
    db.add(Ticket(number=9200, channel=Channel.email, inbox_id=1, token="old", assignee_id=sato.id,
                  status=Status.resolved, created_at=old, first_response_at=old, resolved_at=old))
    db.add(TicketPace(slot=pace.slot_of(old), assignee_id=sato.id, resolved=5))  # a stale row
    await db.commit()
    assert await assert_kept_equal_counted(engine) == {}
    result = await inbound(db, "new")
    await reply(db, result.ticket_id, sato)  # a change that writes a slot also drops stale ones
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(TicketPace)
                           .where(TicketPace.slot < now - pace.HORIZON)) == 0


async def test_the_queue_is_the_longest_waiting_across_open_statuses(db: AsyncSession, staff: Staff) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    for n in range(9):
        await inbound(db, f"q{n}", email=f"q{n}@example.jp")
    await begin_write(db)
    start = datetime.now(UTC) - timedelta(days=1)
    statuses = [Status.pending, Status.unhandled, Status.in_progress, Status.resolved, Status.unhandled,
                Status.pending, Status.no_action, Status.in_progress, Status.unhandled]
    ids = list(await db.scalars(select(Ticket.id).order_by(Ticket.id)))
    for n, (ticket_id, status) in enumerate(zip(ids, statuses, strict=True)):
        await db.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            status=status, updated_at=start + timedelta(minutes=(n * 37) % 11), assignee_id=None))
    await db.execute(update(Ticket).where(Ticket.id == ids[4]).values(assignee_id=sato.id))
    await counts.recount(db)
    await db.commit()
    await db.rollback()
    expected = list(await db.scalars(
        select(Ticket.id).where(Ticket.assignee_id.is_(None),  # type: ignore[union-attr]
                                Ticket.status.in_(board_service.LOAD_STATUSES))  # type: ignore[attr-defined]
        .order_by(Ticket.updated_at, Ticket.id)))
    assert len(expected) == 6
    for limit in (1, 4, 6, 50):
        assert [t.id for t in await board_service.waiting(db, limit)] == expected[:limit]


async def test_concurrent_writers_do_not_queue_on_one_counter_row(engine: AsyncEngine) -> None:
    """On PostgreSQL a transaction that opened a ticket holds its counter row until it commits;
    others opening tickets in the same inbox meanwhile add to other shards instead of waiting
    (without shards each of them would wait, here into its lock timeout)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    sessions = event_sessions(engine)

    def ticket(n: int) -> Ticket:
        return Ticket(number=9300 + n, channel=Channel.api, inbox_id=1, token=f"c{n}")

    async with sessions() as holder:
        holder.add(ticket(0))
        await holder.flush()  # the counter row of (default, nobody, 未対応, api) is now held
        went_through = 0
        for n in range(1, 9):
            async with sessions() as other:
                await other.execute(text("SET LOCAL lock_timeout = '200ms'"))
                other.add(ticket(n))
                try:
                    await other.flush()
                    went_through += 1
                except DBAPIError:
                    pass
                await other.rollback()
        await holder.rollback()
    assert went_through >= 1  # all eight would have to draw the holder's shard: (1/8)^8
