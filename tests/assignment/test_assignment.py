"""Automatic assignment: fairness, capacity, fifty messages at once, and absent operators."""

import asyncio
from collections import Counter
from datetime import timedelta

import httpx
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from helpdesk.auth.models import Role
from helpdesk.db import utcnow
from helpdesk.inboxes.models import Inbox
from helpdesk.realtime import presence
from helpdesk.realtime.log import event_sessions
from helpdesk.realtime.models import Event, PresenceConnection
from helpdesk.tickets import tasks as assignment_tasks
from helpdesk.tickets.models import Ticket
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff


async def go_online(engine: AsyncEngine, *user_ids: int | None) -> None:
    async with event_sessions(engine)() as session:
        for user_id in user_ids:
            assert user_id is not None
            await presence.connect(session, connection_id=f"test-{user_id}", user_id=user_id,
                                   node="test", now=utcnow(), ttl=timedelta(hours=1))
        await session.commit()


async def go_offline(engine: AsyncEngine, user_id: int | None, *, minutes_ago: float) -> None:
    assert user_id is not None
    async with event_sessions(engine)() as session:
        await session.execute(delete(PresenceConnection).where(col(PresenceConnection.user_id) == user_id))
        await presence.refresh_presence(session, user_id, utcnow() - timedelta(minutes=minutes_ago))
        await session.commit()


async def set_policy(http: httpx.AsyncClient, db: AsyncSession, supervisor: dict[str, str],
                     **config: object) -> int:
    inbox_id = await db.scalar(select(col(Inbox.id)).where(col(Inbox.name) == "default"))
    response = await http.put(f"/api/admin/inboxes/{inbox_id}/assignment", json=config,
                              headers=supervisor)
    assert response.status_code == 200, response.text
    return int(inbox_id or 0)


async def assignees(db: AsyncSession) -> list[int | None]:
    await db.rollback()
    return list(await db.scalars(select(col(Ticket.assignee_id)).order_by(col(Ticket.id))))


async def send(http: httpx.AsyncClient, n: int, prefix: str = "m") -> None:
    for i in range(n):
        response = await post_inbound(http, f"{prefix}{i}", inbound_body(email=f"{prefix}{i}@example.jp"))
        assert response.status_code == 201, response.text


async def test_round_robin_spreads_tickets_evenly_and_says_why(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    ops = [await staff.create(f"op{i}", Role.operator, inboxes=["default"]) for i in range(3)]
    away = await staff.create("away", Role.operator, inboxes=["default"])  # member, never online
    op_ids, away_id = [op.id for op in ops], away.id
    await go_online(engine, *[op.id for op in ops])
    await set_policy(http, db, boss, policy="round_robin")
    await send(http, 10)
    counts = Counter(await assignees(db))
    assert set(counts) == set(op_ids) and away_id not in counts
    assert max(counts.values()) - min(counts.values()) <= 1
    first = (await assignees(db))[0]
    ticket_id = await db.scalar(select(col(Ticket.id)).order_by(col(Ticket.id)).limit(1))
    history = (await http.get(f"/api/tickets/{ticket_id}/history", headers=boss)).json()
    assigned = [h for h in history["items"] if h["type"] == "ticket.assigned"]
    assert len(assigned) == 1 and assigned[0]["data"]["assignee_id"] == first
    reason = assigned[0]["data"]["reason"]
    assert reason["policy"] == "round_robin"
    assert sorted(c["user_id"] for c in reason["candidates"]) == sorted(op_ids)
    assert all(c["load"] == 0 for c in reason["candidates"])
    event = await db.scalar(select(Event).where(Event.type == "ticket.assigned").order_by(Event.seq).limit(1))
    assert event is not None and event.data["reason"]["policy"] == "round_robin"


async def test_least_loaded_respects_capacity_and_hands_out_waiting_tickets_when_room_frees(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    a_id, b_id, a_headers = a.id, b.id, Staff.headers(a)
    await go_online(engine, a_id, b_id)
    await set_policy(http, db, boss, policy="least_loaded", capacity={str(a_id): 2, str(b_id): 3},
                     weights={"api": 1.0})
    await send(http, 7)
    counts = Counter(await assignees(db))
    assert counts == {a_id: 2, b_id: 3, None: 2}
    # a resolves one: the oldest waiting ticket goes to a at the next sweep, and no more.
    mine = await db.scalar(select(Ticket).where(col(Ticket.assignee_id) == a_id).limit(1))
    assert mine is not None
    done = await http.patch(f"/api/tickets/{mine.id}", headers=a_headers,
                            json={"version": mine.version, "status": "resolved"})
    assert done.status_code == 200, done.text
    assert await assignment_tasks.sweep_once(event_sessions(engine)) == 1
    counts = Counter(await assignees(db))
    assert counts == {a_id: 3, b_id: 3, None: 1}  # a: 2 open + 1 resolved
    oldest_waiting = (await db.scalars(select(Ticket).order_by(col(Ticket.id)))).all()[5]
    assert oldest_waiting.assignee_id == a_id
    history = (await http.get(f"/api/tickets/{oldest_waiting.id}/history", headers=boss)).json()
    assert history["items"][-1]["data"]["reason"]["why"] == "waiting"


async def test_fifty_messages_at_once_never_exceed_capacity_nor_assign_twice(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    ops = [await staff.create(f"op{i}", Role.operator, inboxes=["default"]) for i in range(4)]
    op_ids = [op.id for op in ops]
    await go_online(engine, *[op.id for op in ops])
    await set_policy(http, db, boss, policy="least_loaded", weights={"api": 1.0},
                     capacity={str(op_id): 10 for op_id in op_ids})
    responses = await asyncio.gather(*(
        post_inbound(http, f"burst{i}", inbound_body(email=f"burst{i}@example.jp")) for i in range(50)))
    assert sorted(r.status_code for r in responses) == [201] * 50, [r.text for r in responses][:3]
    counts = Counter(await assignees(db))
    assert counts == {**{op_id: 10 for op_id in op_ids}, None: 10}
    assigned_events = list(await db.scalars(select(Event).where(Event.type == "ticket.assigned")))
    assert len(assigned_events) == 40
    assert len({e.data["ticket"]["id"] for e in assigned_events}) == 40  # never a ticket twice


async def test_fair_under_concurrency_without_capacity(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    ops = [await staff.create(f"op{i}", Role.operator, inboxes=["default"]) for i in range(3)]
    await go_online(engine, *[op.id for op in ops])
    await set_policy(http, db, boss, policy="least_loaded")
    await asyncio.gather(*(
        post_inbound(http, f"c{i}", inbound_body(email=f"c{i}@example.jp")) for i in range(50)))
    counts = Counter(await assignees(db))
    assert None not in counts and sum(counts.values()) == 50
    assert max(counts.values()) - min(counts.values()) <= 1


async def test_an_absent_operators_unhandled_tickets_move_after_the_grace_period(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    a_id, b_id, a_headers = a.id, b.id, Staff.headers(a)
    await go_online(engine, a_id)
    await set_policy(http, db, boss, policy="round_robin", offline_grace_seconds=300)
    await send(http, 2)
    assert await assignees(db) == [a_id, a_id]
    ticket = (await db.scalars(select(Ticket).order_by(col(Ticket.id)))).all()[1]
    held = await http.patch(f"/api/tickets/{ticket.id}", headers=a_headers, json={
        "version": ticket.version, "status": "in_progress"})  # being worked: stays with a
    assert held.status_code == 200
    await go_online(engine, b_id)
    await go_offline(engine, a_id, minutes_ago=2)  # within the grace period: nothing moves
    sessionmaker = event_sessions(engine)
    assert await assignment_tasks.sweep_once(sessionmaker) == 0
    await go_offline(engine, a_id, minutes_ago=0)  # refresh does not move "since" back
    assert await assignment_tasks.sweep_once(sessionmaker, now=utcnow() + timedelta(minutes=6)) == 1
    assert await assignees(db) == [b_id, a_id]
    first_id = (await db.scalars(select(col(Ticket.id)).order_by(col(Ticket.id)))).first()
    history = (await http.get(f"/api/tickets/{first_id}/history", headers=boss)).json()
    moved = history["items"][-1]
    assert moved["type"] == "ticket.assigned" and moved["data"]["assignee_id"] == b_id
    assert moved["data"]["reason"]["why"] == "offline"
    assert moved["data"]["reason"]["previous_assignee_id"] == a_id


async def test_with_nobody_online_an_absent_operators_tickets_go_back_to_the_queue(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    a = await staff.create("a", Role.operator, inboxes=["default"])
    a_id = a.id
    await go_online(engine, a_id)
    await set_policy(http, db, boss, policy="least_loaded", offline_grace_seconds=0)
    await send(http, 1)
    await go_offline(engine, a_id, minutes_ago=1)
    assert await assignment_tasks.sweep_once(event_sessions(engine)) == 1
    assert await assignees(db) == [None]
    ticket_id = await db.scalar(select(col(Ticket.id)))
    history = (await http.get(f"/api/tickets/{ticket_id}/history", headers=boss)).json()
    assert history["items"][-1]["type"] == "ticket.unassigned"
    assert history["items"][-1]["data"]["reason"]["previous_assignee_id"] == a_id


async def test_policy_settings_are_checked(http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    op = await staff.create("op", Role.operator, inboxes=["default"])
    inbox_id = await db.scalar(select(col(Inbox.id)))
    url = f"/api/admin/inboxes/{inbox_id}/assignment"
    default = await http.get(url, headers=boss)
    assert default.json()["policy"] == "manual"
    assert (await http.put(url, json={"policy": "round_robin"}, headers=Staff.headers(op))).status_code == 403
    for bad in ({"policy": "random"}, {"capacity": {"99999": 3}}, {"capacity": {"x": 1}},
                {"weights": {"fax": 1.0}}, {"offline_grace_seconds": -1}):
        assert (await http.put(url, json=bad, headers=boss)).status_code == 422, bad
    assert (await http.get(url, headers=boss)).json()["policy"] == "manual"
    assert (await http.get("/api/admin/inboxes/424242/assignment", headers=boss)).status_code == 404


async def test_sticky_gives_a_returning_customer_their_last_operator(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    boss = Staff.headers(await staff.create("boss", Role.supervisor))
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    a_id, b_id = a.id, b.id
    await go_online(engine, a_id, b_id)
    await set_policy(http, db, boss, policy="round_robin", sticky=True)
    await send(http, 1, prefix="x")  # customer x → a
    await send(http, 1, prefix="y")  # customer y → b
    # y writes again about something else (a new ticket): round robin would say a; sticky says b.
    again = await post_inbound(http, "y-again", {**inbound_body(email="y0@example.jp"),
                                                 "external_id": "other-thread"})
    assert again.status_code == 201
    assert await assignees(db) == [a_id, b_id, b_id]
    history = (await http.get(f"/api/tickets/{again.json()['ticket_id']}/history", headers=boss)).json()
    assert history["items"][-1]["data"]["reason"]["sticky"] is True
