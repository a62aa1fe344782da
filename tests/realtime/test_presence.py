"""Presence: online on connect, away on request, offline a grace period after a socket drops."""

import json
import time

from helpdesk.auth.models import Role
from tests.realtime.conftest import ServerFactory
from tests.support.sockets import frames_until, open_socket, quiet
from tests.support.staff import Staff


def presence_of(user_id: int, frames: list[dict]) -> list[str]:
    return [f["data"]["status"] for f in frames
            if f["type"] == "presence.changed" and f["data"]["user_id"] == user_id]


async def test_presence_follows_the_socket_and_lapses_after_the_grace_period(
        live_servers: ServerFactory, client_for, staff: Staff) -> None:
    live = live_servers(presence_grace_seconds=1.0)
    http = client_for(live)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    watcher = await staff.create("watcher", Role.operator)  # no inbox: presence is for all staff
    assert sato.id is not None
    sato_id, headers = sato.id, Staff.headers(watcher)

    async def status() -> str:
        rows = (await http.get("/api/presence", headers=headers)).json()
        return next(r["status"] for r in rows if r["user_id"] == sato_id)

    async with open_socket(live, Staff.token(watcher), after=0) as observer:
        assert await status() == "offline"
        ws = await open_socket(live, Staff.token(sato))
        seen = await frames_until(observer, lambda f: presence_of(sato_id, f) == ["online"])
        assert seen[-1]["data"]["name"] == "sato" and seen[-1]["data"]["role"] == "operator"
        assert await status() == "online"

        await ws.send(json.dumps({"type": "presence", "status": "away"}))
        await frames_until(observer, lambda f: presence_of(sato_id, f) == ["away"])
        assert await status() == "away"

        ws.transport.abort()  # the network goes: no close frame, no goodbye
        dropped = time.monotonic()
        assert await status() == "away"  # within the grace period nothing changes
        await frames_until(observer, lambda f: presence_of(sato_id, f) == ["offline"])
        assert time.monotonic() - dropped >= 1.0
        assert await status() == "offline"


async def test_a_quick_reconnect_stays_online(live_servers: ServerFactory, client_for,
                                              staff: Staff) -> None:
    live = live_servers(presence_grace_seconds=1.0)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    boss = await staff.create("boss", Role.supervisor)
    assert sato.id is not None
    sato_id, token = sato.id, Staff.token(sato)
    async with open_socket(live, Staff.token(boss), after=0) as observer:
        async with open_socket(live, token) as first:
            await first.send(json.dumps({"type": "presence", "status": "online"}))  # a heartbeat
            await frames_until(observer, lambda f: presence_of(sato_id, f) == ["online"])
        async with open_socket(live, token):  # a page reload
            later = await quiet(observer, 2.5)  # more than twice the grace period
            assert presence_of(sato_id, later) == []
            rows = (await client_for(live).get("/api/presence", headers=Staff.headers(boss))).json()
            assert {r["user_id"]: r["status"] for r in rows}[sato_id] == "online"


async def test_two_sockets_of_one_user_combine(live_servers: ServerFactory, staff: Staff) -> None:
    live = live_servers(presence_grace_seconds=0.5)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    boss = await staff.create("boss", Role.supervisor)
    assert sato.id is not None
    sato_id, token = sato.id, Staff.token(sato)
    async with open_socket(live, Staff.token(boss), after=0) as observer:
        async with open_socket(live, token) as desk:
            async with open_socket(live, token) as phone:
                await frames_until(observer, lambda f: presence_of(sato_id, f) == ["online"])
                await phone.send(json.dumps({"type": "presence", "status": "away"}))
                # the desk is still online, so the user is
                assert presence_of(sato_id, await quiet(observer, 0.5)) == []
            await desk.send(json.dumps({"type": "presence", "status": "away"}))
            frames = await frames_until(observer, lambda f: "away" in presence_of(sato_id, f))
            assert presence_of(sato_id, frames) == ["away"]
        frames = await frames_until(observer, lambda f: "offline" in presence_of(sato_id, f))
        assert presence_of(sato_id, frames) == ["offline"]


async def test_presence_list_needs_a_signed_in_user_and_lists_everyone(
        live_servers: ServerFactory, client_for, staff: Staff) -> None:
    live = live_servers()
    http = client_for(live)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    await staff.create("suzuki", Role.admin)
    assert (await http.get("/api/presence")).status_code == 401
    rows = (await http.get("/api/presence", headers=Staff.headers(sato))).json()
    assert rows == [
        {"user_id": rows[0]["user_id"], "name": "sato", "role": "operator", "status": "offline",
         "since": None},
        {"user_id": rows[1]["user_id"], "name": "suzuki", "role": "admin", "status": "offline",
         "since": None},
    ]
