"""The ticket_count table always equals counting the tickets, whichever path moved them."""

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import counts
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Status, Ticket, TicketCount, TicketUpdate
from tests.support.inbound import inbound, post_inbound
from tests.support.staff import Staff


async def assert_counters_match(db: AsyncSession) -> dict[tuple[int, int, str], int]:
    await db.rollback()
    truth = {(inbox, assignee or 0, str(status), str(channel)): n
             for inbox, assignee, status, channel, n in (await db.execute(
                 select(Ticket.inbox_id, Ticket.assignee_id, Ticket.status, Ticket.channel, func.count())
                 .group_by(Ticket.inbox_id, Ticket.assignee_id, Ticket.status, Ticket.channel))).all()}
    rows = list(await db.scalars(select(TicketCount)))
    per_channel: dict[tuple[int, int, str, str], int] = {}
    for r in rows:  # a key's shards summed
        per_channel[(r.inbox_id, r.assignee_id, r.status, r.channel)] = (
            per_channel.get((r.inbox_id, r.assignee_id, r.status, r.channel), 0) + r.n)
    assert {key: n for key, n in per_channel.items() if n} == truth
    kept: dict[tuple[int, int, str], int] = {}
    for r in rows:
        if r.n:
            key = (r.inbox_id, r.assignee_id, r.status)
            kept[key] = kept.get(key, 0) + r.n
    return kept


async def test_counters_follow_ingest_claim_update_reply_and_reopen(
        db: AsyncSession, staff: Staff, http: httpx.AsyncClient) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    boss = await staff.create("boss", Role.supervisor)
    first = await inbound(db, "m1")
    await inbound(db, "m2", email="hanako@example.jp", name="花子")
    await post_inbound(http, "m3")  # a third message through the real API, same customer thread
    assert (await assert_counters_match(db))[(1, 0, "unhandled")] == 2

    await begin_write(db)
    await tickets.claim(db, first.ticket_id, actor=sato)
    await db.commit()
    kept = await assert_counters_match(db)
    assert kept[(1, sato.id, "in_progress")] == 1

    await begin_write(db)
    version = (await db.get(Ticket, first.ticket_id)).version
    locked = await tickets.lock_for_change(db, first.ticket_id, version)
    await tickets.update(db, locked, TicketUpdate(version=locked.version, status=Status.pending,
                                                  pending_reason="返信待ち", assignee_id=boss.id),
                         actor=boss)
    await db.commit()
    assert (await assert_counters_match(db))[(1, boss.id, "pending")] == 1

    await inbound(db, "m4", body="まだですか")  # the customer writes again: back to 未対応
    kept = await assert_counters_match(db)
    assert kept[(1, boss.id, "unhandled")] == 1

    await begin_write(db)
    ticket = await db.get(Ticket, first.ticket_id)
    await tickets.reply(db, ticket, body="確認します", internal=False, actor=boss)
    await db.commit()
    await assert_counters_match(db)


async def test_reading_counts_by_scope(db: AsyncSession, staff: Staff) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    for n in range(3):
        await inbound(db, f"k{n}", email=f"c{n}@example.jp")
    result = await inbound(db, "k9", email="c9@example.jp")
    await begin_write(db)
    await tickets.claim(db, result.ticket_id, actor=sato)
    await db.commit()
    assert (await counts.by_status(db, inbox_ids=[1]))["unhandled"] == 3
    assert (await counts.by_status(db, inbox_ids=[1], assignee_id=sato.id))["in_progress"] == 1
    assert (await counts.by_status(db, inbox_ids=[1], assignee_id=0))["in_progress"] == 0
    assert (await counts.by_status(db, inbox_ids=[]))["unhandled"] == 0
    assert (await counts.by_assignee(db))[sato.id]["in_progress"] == 1
    assert (await counts.unassigned_by_inbox(db))[1]["unhandled"] == 3
