"""Collision: "A is viewing / replying" reaches the others who may see the ticket; 409 is the guard."""

import asyncio
import json

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.inboxes import service as inbox_service
from tests.support.inbound import post_inbound
from tests.support.server import LiveServer
from tests.support.sockets import next_frame, open_socket, settled
from tests.support.staff import Staff


async def ephemeral(ws, wait: float = 0.5) -> list[dict]:  # type: ignore[no-untyped-def]
    """The viewing/typing frames that arrive within ``wait`` seconds."""
    found: list[dict] = []
    try:
        async with asyncio.timeout(wait):
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"].startswith("ticket.") and "seq" not in frame:
                    found.append(frame)
    except TimeoutError:
        pass
    return found


async def test_viewing_and_typing_reach_the_other_operators_of_the_ticket_only(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    await inbox_service.create_inbox(db, name="billing")
    await db.commit()
    ticket_id = (await post_inbound(http, "t-1")).json()["ticket_id"]
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    outsider = await staff.create("outsider", Role.operator, inboxes=["billing"])
    boss = await staff.create("boss", Role.supervisor)
    a_id = a.id
    async with open_socket(server, Staff.token(a)) as ws_a, \
            open_socket(server, Staff.token(b)) as ws_b, \
            open_socket(server, Staff.token(outsider)) as ws_out, \
            open_socket(server, Staff.token(boss)) as ws_boss:
        for ws in (ws_a, ws_b, ws_out, ws_boss):
            await ws.send(json.dumps({"type": "resume", "after": 0}))
            await settled(ws)
        await ws_a.send(json.dumps({"type": "viewing", "ticket_id": ticket_id}))
        await ws_a.send(json.dumps({"type": "typing", "ticket_id": ticket_id}))
        for ws in (ws_b, ws_boss):
            frames = await ephemeral(ws)
            assert [f["type"] for f in frames] == ["ticket.viewing", "ticket.typing"]
            assert all(f["data"] == {"ticket_id": ticket_id, "user_id": a_id, "name": "a"}
                       for f in frames)
            assert all(set(f) == {"type", "at", "data"} for f in frames)  # no seq: not stored
        assert await ephemeral(ws_a) == []  # not echoed to its sender
        assert await ephemeral(ws_out) == []
        # the outsider may not even learn that the ticket exists
        await ws_out.send(json.dumps({"type": "viewing", "ticket_id": ticket_id}))
        assert (await next_frame(ws_out))["data"] == {"detail": "ticket not found"}
        assert await ephemeral(ws_a) == []


async def test_the_version_check_stops_a_double_reply(
        server: LiveServer, http: httpx.AsyncClient, staff: Staff) -> None:
    ticket = (await post_inbound(http, "t-2")).json()
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    version = (await http.get(f"/api/tickets/{ticket['ticket_id']}",
                              headers=Staff.headers(a))).json()["version"]
    replies = await asyncio.gather(*(
        http.post(f"/api/tickets/{ticket['ticket_id']}/messages", headers=Staff.headers(user),
                  json={"body": f"お問い合わせありがとうございます ({user.name})", "version": version})
        for user in (a, b)))
    assert sorted(r.status_code for r in replies) == [201, 409]
    conflict = next(r for r in replies if r.status_code == 409).json()
    assert conflict["current"]["version"] == version + 1
