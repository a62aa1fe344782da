"""Two ``helpdesk serve`` processes behind nginx, as docs/deploy.md sets them up: each its own
process on its own port, on PostgreSQL with Redis between them; no sticky sessions, websockets
proxied with their Upgrade headers. Every socket gets every event once and in order, wherever its
messages were posted, and a socket that reconnects and lands on the other process resumes
without a gap or a repeat."""

import getpass
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from websockets.asyncio.client import ClientConnection, connect

from helpdesk.auth.models import Role
from tests.realtime.conftest import FAST
from tests.support.inbound import post_inbound
from tests.support.server import INBOUND_TOKEN, SECRET, free_port
from tests.support.services import unavailable, unique_prefix
from tests.support.sockets import committed_events, frames_until
from tests.support.staff import Staff
from tests.support.waiting import wait_until_sync

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
            # Which process took the socket (the access log has it only once the socket closes).
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


class ServeProcess:
    """``helpdesk serve --workers 1`` in a process of its own on a loopback port, its output kept
    in a file so a failed start says why."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.output = folder / f"serve-{self.port}.log"
        with self.output.open("wb") as output:
            # The folder is the working directory: no stray .env is read.
            self.process = subprocess.Popen(
                [sys.executable, "-m", "helpdesk.cli", "serve", "--port", str(self.port), "--workers", "1"],
                env=env, cwd=folder, stdout=output, stderr=subprocess.STDOUT)

    def answers(self) -> bool:
        return _healthy(f"http://{self.address}", self.process,
                        lambda: f"helpdesk serve exited: {self.output.read_text()}")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def _healthy(url: str, process: "subprocess.Popen[bytes]", exited: Callable[[], str]) -> bool:
    """Whether ``url`` answers its health check; raises with ``exited()`` if the process died."""
    if process.poll() is not None:
        raise RuntimeError(exited())
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


class Nginx:
    """nginx in the foreground with its config, pid and logs in a folder of its own."""

    def __init__(self, folder: Path, port: int, upstreams: list[ServeProcess]) -> None:
        self.folder, self.port = folder, port
        self.url = f"http://127.0.0.1:{self.port}"
        user = f"user {getpass.getuser()};" if os.geteuid() == 0 else ""
        config = folder / "nginx.conf"
        config.write_text(CONFIG.format(tmp=folder, a=upstreams[0].port, b=upstreams[1].port,
                                        port=self.port, user=user))
        assert NGINX is not None
        self.process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(config), "-g", "daemon off;"],
                                        stderr=subprocess.DEVNULL)
        wait_until_sync(self._answers, within=30)

    def _answers(self) -> bool:
        log = self.folder / "error.log"
        return _healthy(self.url, self.process,
                        lambda: f"nginx exited: {log.read_text() if log.exists() else ''}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def subscribers(url: str, channel: str) -> int:
    """How many connections hold a Redis subscription to ``channel``."""
    client = redis.Redis.from_url(url)
    try:
        return int(dict(client.pubsub_numsub(channel))[channel.encode()])
    finally:
        client.close()


def serve_environment(database_url: str, redis_url: str, channel: str, public_url: str) -> dict[str, str]:
    """What each process is given: one database, one Redis channel, polling slowed to a crawl
    (the news between processes comes only by Redis), and no background jobs."""
    settings = {**FAST, "event_poll_seconds": 60.0, "database_url": database_url, "redis_url": redis_url,
                "redis_channel": channel, "secret_key": SECRET, "inbound_token": INBOUND_TOKEN,
                "public_url": public_url, "run_workers": False}
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    return {**inherited, **{f"HELPDESK_{name.upper()}": str(value) for name, value in settings.items()}}


@pytest.fixture
def nginx_in_front(database_url: str, redis_url: str, engine: AsyncEngine,
                   tmp_path: Path) -> Iterator[tuple[Nginx, ServeProcess, ServeProcess]]:
    """Two serve processes on the (emptied) test database, subscribed to Redis, behind nginx."""
    if not database_url.startswith("postgresql"):
        pytest.skip("several serve processes share PostgreSQL (set HELPDESK_TEST_DATABASE_URL)")
    if NGINX is None:
        unavailable("nginx is not installed (apt-get install nginx-light)")
    channel = unique_prefix()
    port = free_port()  # nginx's, known before the processes that name it as their public URL
    env = serve_environment(database_url, redis_url, channel, f"http://127.0.0.1:{port}")
    processes = [ServeProcess(tmp_path, env), ServeProcess(tmp_path, env)]  # they start side by side
    try:
        # Generous: on a busy 2-core host two interpreters importing the app take a while.
        for process in processes:
            wait_until_sync(process.answers, within=180)
        wait_until_sync(lambda: subscribers(redis_url, f"{channel}:events") == 2, within=60)
        proxy = Nginx(tmp_path, port, processes)
        try:
            yield proxy, processes[0], processes[1]
        finally:
            proxy.stop()
    finally:
        for process in processes:
            process.stop()


def work(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f["type"] not in ("presence.changed", "ping")]


def messages(frames: list[dict[str, Any]]) -> set[int]:
    return {f["data"]["message_id"] for f in frames if f["type"] == "message.created"}


async def socket_on(proxy: Nginx, target: ServeProcess, token: str, **params: object) -> ClientConnection:
    """A socket through nginx that landed on ``target`` (nginx takes turns: retried until so)."""
    query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items())
    for _ in range(6):
        ws = await connect(f"ws://127.0.0.1:{proxy.port}/ws?{query}", compression=None, proxy=None,
                           open_timeout=10)
        assert ws.response is not None
        if ws.response.headers["X-Upstream"] == target.address:
            return ws
        await ws.close()
    raise AssertionError("nginx never sent a socket to the wanted process")


async def test_two_serve_processes_behind_nginx_deliver_every_event_once_in_order_across_a_reconnect(
        nginx_in_front: tuple[Nginx, ServeProcess, ServeProcess], staff: Staff, db: AsyncSession) -> None:
    proxy, a, b = nginx_in_front
    boss = await staff.create("boss", Role.supervisor)
    token = Staff.token(boss)
    on_a = await socket_on(proxy, a, token)
    on_b = await socket_on(proxy, b, token)
    async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as http:
        posted = [await post_inbound(http, f"nginx-{n}") for n in range(6)]
        assert all(r.status_code == 201 for r in posted)
        first = {r.json()["message_id"] for r in posted}
        # Both processes took posts: nginx has no sticky sessions.
        upstreams = {line.split()[-1] for line in (proxy.folder / "access.log").read_text().splitlines()
                     if "POST /api/inbound" in line}
        assert upstreams == {a.address, b.address}

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
        back = await socket_on(proxy, b, token, after=last)
        resumed = work(await frames_until(back, lambda f: messages(f) >= second, wait=30))
    everything = [(e.seq, e.type) for e in await committed_events(db) if e.type != "presence.changed"]
    got = [(f["seq"], f["type"]) for f in seen_a + resumed]
    assert got == everything[:len(got)]  # once each, in order, nothing missing across the reconnect
    assert messages(seen_a + resumed) == first | second
    for ws in (on_b, back):
        await ws.close()
