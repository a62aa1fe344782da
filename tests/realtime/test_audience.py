"""Who receives what: operators only their inboxes' events, live and on replay, as membership changes."""

import json

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.exceptions import ConnectionClosed

from helpdesk.auth import service as auth
from helpdesk.auth.models import Role, SessionKind, User
from helpdesk.inboxes import service as inbox_service
from helpdesk.inboxes.models import InboxMember
from helpdesk.realtime import log as events
from helpdesk.storage.sessions import begin_write
from tests.support.inbound import inbound_body, post_inbound
from tests.support.server import SECRET, LiveServer
from tests.support.sockets import committed_events, frames_until, open_socket, quiet
from tests.support.staff import Staff

NOT_PRESENCE = "presence.changed"


def work(frames: list[dict]) -> list[dict]:
    return [f for f in frames if f["type"] != NOT_PRESENCE]


async def post_to(http: httpx.AsyncClient, inbox: str, key: str) -> None:
    body = {**inbound_body(f"{inbox} の件", email=f"{inbox}@example.jp"), "inbox": inbox}
    response = await post_inbound(http, key, body)
    assert response.status_code == 201, response.text


async def test_operator_never_receives_another_inboxs_events(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    billing_id = (await inbox_service.create_inbox(db, name="billing")).id
    await db.commit()
    front = await staff.create("front", Role.operator, inboxes=["default"])
    back = await staff.create("back", Role.operator, inboxes=["billing"])
    nowhere = await staff.create("nowhere", Role.operator)
    boss = await staff.create("boss", Role.supervisor)
    sockets = {user.name: open_socket(server, Staff.token(user), after=0)
               for user in (front, back, nowhere, boss)}
    async with sockets["front"] as ws_front, sockets["back"] as ws_back, \
            sockets["nowhere"] as ws_nowhere, sockets["boss"] as ws_boss:
        for n in range(3):
            await post_to(http, "default", f"d-{n}")
            await post_to(http, "billing", f"b-{n}")
        everything = [e for e in await committed_events(db) if e.type != NOT_PRESENCE]
        assert len(everything) == 12
        boss_frames = await frames_until(ws_boss, lambda f: len(work(f)) >= 12)
        front_frames = await frames_until(ws_front, lambda f: len(work(f)) >= 6)
        back_frames = await frames_until(ws_back, lambda f: len(work(f)) >= 6)
        extra = {name: work(await quiet(ws, 0.5)) for name, ws in
                 (("front", ws_front), ("back", ws_back), ("nowhere", ws_nowhere))}

    inbox_of = {e.seq: e.inbox_id for e in everything}
    assert [f["seq"] for f in work(boss_frames)] == [e.seq for e in everything]
    assert {inbox_of[f["seq"]] for f in work(front_frames)} == {1}  # "default" is inbox 1
    assert {inbox_of[f["seq"]] for f in work(back_frames)} == {billing_id}
    assert extra == {"front": [], "back": [], "nowhere": []}


async def test_membership_changes_apply_to_open_sockets_and_replays(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    billing_id = (await inbox_service.create_inbox(db, name="billing")).id
    await db.commit()
    mover = await staff.create("mover", Role.operator, inboxes=["default"])
    mover_id, token = mover.id, Staff.token(mover)
    assert billing_id is not None and mover_id is not None
    async with open_socket(server, token, after=0) as ws:
        await post_to(http, "billing", "b-before")
        await post_to(http, "default", "d-1")
        first = work(await frames_until(ws, lambda f: len(work(f)) >= 2))
        billing_seqs = {e.seq for e in await committed_events(db) if e.inbox_id == billing_id}
        assert not billing_seqs & {f["seq"] for f in first}

        # Moved from default to billing while connected: the socket follows at once.
        await inbox_service.add_member(db, inbox_id=billing_id, user_id=mover_id)
        await db.execute(delete(InboxMember).where(InboxMember.user_id == mover_id,
                                                   InboxMember.inbox_id == 1))
        await db.commit()
        await post_to(http, "default", "d-2")
        await post_to(http, "billing", "b-after")
        moved = work(await frames_until(ws, lambda f: len(work(f)) >= 2))
        after = await committed_events(db, first[-1]["seq"])
        assert [f["seq"] for f in moved] == [e.seq for e in after if e.inbox_id == billing_id]
        assert work(await quiet(ws, 0.3)) == []

    # A replay from the start shows what the user may see now: billing only.
    async with open_socket(server, token) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        replay = work(await frames_until(ws, lambda f: len(work(f)) >= 4))
        assert work(await quiet(ws, 0.3)) == []
    expected = [e.seq for e in await committed_events(db) if e.inbox_id == billing_id]
    assert [f["seq"] for f in replay] == expected


async def test_events_for_named_users_reach_only_them_and_supervisors(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    offered = await staff.create("offered", Role.operator)
    other = await staff.create("other", Role.operator)
    boss = await staff.create("boss", Role.supervisor)
    offered_id = offered.id
    assert offered_id is not None
    async with open_socket(server, Staff.token(offered), after=0) as ws_offered, \
            open_socket(server, Staff.token(other), after=0) as ws_other, \
            open_socket(server, Staff.token(boss), after=0) as ws_boss:
        # A call offered to one operator, committed by another process (no bus here: the
        # server finds it by polling the table).
        events.record(db, type="call.ringing", data={"call_id": "CA1"}, user_ids=[offered_id])
        await db.commit()
        for ws in (ws_offered, ws_boss):
            frames = work(await frames_until(ws, lambda f: len(work(f)) >= 1))
            assert [f["type"] for f in frames] == ["call.ringing"]
        assert work(await quiet(ws_other, 0.5)) == []


async def test_disabling_an_account_closes_its_open_socket(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    leaver = await staff.create("leaver", Role.operator, inboxes=["default"])
    async with open_socket(server, Staff.token(leaver), after=0) as ws:
        await post_to(http, "default", "before")
        assert len(work(await frames_until(ws, lambda f: len(work(f)) >= 2))) == 2
        leaver.is_active = False
        await db.commit()
        await post_to(http, "default", "after")
        with pytest.raises(ConnectionClosed) as closed:
            await frames_until(ws, lambda f: False)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def _second_token(db: AsyncSession, user_id: int) -> str:
    """Another signed-in API session of the user (a second device)."""
    await begin_write(db)
    user = await db.get(User, user_id)
    assert user is not None
    token = await auth.sign_in(db, secret_key=SECRET, user=user, kind=SessionKind.api, ttl_seconds=3600)
    await db.commit()
    return token


async def test_signing_out_closes_the_sockets_of_that_session_and_no_other(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    assert sato.id is not None
    laptop, phone = Staff.token(sato), await _second_token(db, sato.id)
    async with open_socket(server, laptop, after=0) as on_laptop, \
            open_socket(server, phone, after=0) as on_phone:
        await post_to(http, "default", "before")
        for ws in (on_laptop, on_phone):
            assert len(work(await frames_until(ws, lambda f: len(work(f)) >= 2))) == 2
        answer = await http.post("/api/auth/logout", headers={"Authorization": f"Bearer {laptop}"})
        assert answer.status_code == 204
        with pytest.raises(ConnectionClosed) as closed:
            await frames_until(on_laptop, lambda f: False)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        await post_to(http, "default", "after")  # the phone's session is still signed in
        after = work(await frames_until(on_phone, lambda f: any(
            x["type"] == "message.created" for x in work(f))))
        assert [f["type"] for f in after if f["type"] != "session.revoked"][-1] == "message.created"


async def test_signing_out_everywhere_closes_every_socket_of_the_user(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    other = await staff.create("other", Role.operator, inboxes=["default"])
    assert sato.id is not None
    laptop, phone = Staff.token(sato), await _second_token(db, sato.id)
    async with open_socket(server, laptop, after=0) as on_laptop, \
            open_socket(server, phone, after=0) as on_phone, \
            open_socket(server, Staff.token(other), after=0) as on_other:
        await quiet(on_other, 0.2)
        answer = await http.post("/api/auth/logout-everywhere", headers={"Authorization": f"Bearer {phone}"})
        assert answer.status_code == 204
        for ws in (on_laptop, on_phone):
            with pytest.raises(ConnectionClosed) as closed:
                await frames_until(ws, lambda f: False)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        await post_to(http, "default", "still-here")  # another operator's socket goes on
        assert len(work(await frames_until(on_other, lambda f: len(work(f)) >= 2))) >= 2
