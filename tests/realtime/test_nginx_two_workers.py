"""Two workers behind nginx, as docs/deploy.md sets them up: no sticky sessions, websockets
proxied with their Upgrade headers, news between the workers over Redis. Every socket gets
every event once and in order, wherever its messages were posted, and a socket that reconnects
and lands on the other worker resumes without a gap or a repeat."""

import getpass
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import ClientConnection, connect

from helpdesk.auth.models import Role
from tests.realtime.conftest import ServerFactory
from tests.support.inbound import post_inbound
from tests.support.server import LiveServer, free_port
from tests.support.services import redis_overrides, unavailable
from tests.support.sockets import committed_events, frames_until
from tests.support.staff import Staff
from tests.support.waiting import wait_until, wait_until_sync

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)

CONFIG = """
worker_processes 1;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$request $status $upstream_addr';
    access_log {tmp}/access.log upstream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; '' close; }}
    upstream helpdesk {{
        server 127.0.0.1:{a};
        server 127.0.0.1:{b};
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 11m;
        location / {{
            proxy_pass http://helpdesk;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
        location = /ws {{
            proxy_pass http://helpdesk;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 1h;
            proxy_buffering off;
        }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground with its config, pid and logs in a folder of its own."""

    def __init__(self, folder: Path, upstreams: list[LiveServer]) -> None:
        self.folder, self.port = folder, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        config = folder / "nginx.conf"
        config.write_text(CONFIG.format(tmp=folder, a=upstreams[0].port, b=upstreams[1].port,
                                        port=self.port, user=user))
        assert NGINX is not None
        self.process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(config), "-g", "daemon off;"],
                                        stderr=subprocess.DEVNULL)
        wait_until_sync(self._answers)

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            log = self.folder / "error.log"
            raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@pytest.fixture
def nginx_in_front(live_servers: ServerFactory, redis_url: str,
                   tmp_path: Path) -> Iterator[tuple[Nginx, LiveServer, LiveServer]]:
    if NGINX is None:
        unavailable("nginx is not installed (apt-get install nginx-light)")
    shared = {**redis_overrides(redis_url), "event_poll_seconds": 60.0}  # news only by Redis
    a, b = live_servers(**shared), live_servers(**shared)
    proxy = Nginx(tmp_path, [a, b])
    yield proxy, a, b
    proxy.stop()


def hub_of(server: LiveServer) -> Any:
    return server.server.config.app.state.hub


def work(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] not in ("presence.changed", "ping")]


async def socket_on(proxy: Nginx, target: LiveServer, other: LiveServer, token: str,
                    **params: object) -> ClientConnection:
    """A socket through nginx that landed on ``target`` (nginx takes turns: retried until so)."""
    query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items())
    for _ in range(6):
        before = (len(hub_of(target).clients), len(hub_of(other).clients))
        ws = await connect(f"ws://127.0.0.1:{proxy.port}/ws?{query}", compression=None, proxy=None,
                           open_timeout=10)
        landed = await wait_until(lambda before=before: _landed(before, target, other))
        if landed == "target":
            return ws
        await ws.close()
        await wait_until(lambda count=before[1]: len(hub_of(other).clients) == count)
    raise AssertionError("nginx never sent a socket to the wanted worker")


def _landed(before: tuple[int, int], target: LiveServer, other: LiveServer) -> str | None:
    if len(hub_of(target).clients) > before[0]:
        return "target"
    if len(hub_of(other).clients) > before[1]:
        return "other"
    return None


async def test_two_workers_behind_nginx_deliver_every_event_once_in_order_across_a_reconnect(
        nginx_in_front: tuple[Nginx, LiveServer, LiveServer], staff: Staff, db: AsyncSession) -> None:
    proxy, a, b = nginx_in_front
    boss = await staff.create("boss", Role.supervisor)
    await wait_until(lambda: hub_of(a).bus.connected and hub_of(b).bus.connected)
    token = Staff.token(boss)
    on_a = await socket_on(proxy, a, b, token)
    on_b = await socket_on(proxy, b, a, token)
    async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as http:
        posted = [await post_inbound(http, f"nginx-{n}") for n in range(6)]
        assert all(r.status_code == 201 for r in posted)
        first = {r.json()["message_id"] for r in posted}
        # Both workers took posts: nginx has no sticky sessions.
        upstreams = {line.split()[-1] for line in (proxy.folder / "access.log").read_text().splitlines()
                     if "POST /api/inbound" in line}
        assert upstreams == {f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"}

        def messages(frames: list[dict[str, Any]]) -> set[int]:
            return {f["data"]["message_id"] for f in frames if f["type"] == "message.created"}

        seen_a = work(await frames_until(on_a, lambda f: messages(f) >= first, wait=30))
        seen_b = work(await frames_until(on_b, lambda f: messages(f) >= first, wait=30))
        expected = [(e.seq, e.type) for e in await committed_events(db)
                    if e.type != "presence.changed" and e.seq <= seen_a[-1]["seq"]]
        assert [(f["seq"], f["type"]) for f in seen_a] == expected
        assert [(f["seq"], f["type"]) for f in seen_b][:len(expected)] == expected

        # The socket on a goes away; meanwhile more arrives; it comes back through nginx on b.
        last = seen_a[-1]["seq"]
        await on_a.close()
        later = [await post_inbound(http, f"nginx-later-{n}") for n in range(4)]
        second = {r.json()["message_id"] for r in later}
        back = await socket_on(proxy, b, a, token, after=last)
        resumed = work(await frames_until(back, lambda f: messages(f) >= second, wait=30))
    everything = [(e.seq, e.type) for e in await committed_events(db) if e.type != "presence.changed"]
    got = [(f["seq"], f["type"]) for f in seen_a + resumed]
    assert got == everything[:len(got)]  # once each, in order, nothing missing across the reconnect
    assert messages(seen_a + resumed) == first | second
    for ws in (on_b, back):
        await ws.close()
