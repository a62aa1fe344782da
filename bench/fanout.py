"""Fan-out: how fast one server process delivers an event to 1,000 open sockets.

Starts ``helpdesk serve`` in a subprocess (its own core; SQLite in a temporary folder unless
``--database-url`` names another database), signs in staff, opens N sockets with the
``websockets`` client, then posts messages one at a time and times their arrival on every socket.
Prints p50/p99/max delivery latency, a burst's throughput, and the server's memory per socket.

    .venv/bin/python bench/fanout.py [--sockets 1000] [--rounds 30] [--database-url URL]
    .venv/bin/python bench/fanout.py --idle 60 [--sockets 1000] [--database-url URL] [--redis-url URL]

``--idle SECONDS`` measures memory instead: the server runs as deployed (its background workers
on, Redis when ``--redis-url`` is given), the sockets are opened from this process, one message
reaches them all, and then nothing happens for SECONDS while the server's resident memory is
sampled. It prints the server's RSS before the sockets, at rest with them open, and per socket.
"""

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from websockets.asyncio.client import ClientConnection, connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from helpdesk.auth import service as auth  # noqa: E402
from helpdesk.auth.models import Role, SessionKind  # noqa: E402
from helpdesk.db import create_engine  # noqa: E402
from helpdesk.inboxes import service as inbox_service  # noqa: E402
from helpdesk.migrations import run_upgrade  # noqa: E402
from helpdesk.realtime.log import event_sessions  # noqa: E402

SECRET = "bench-secret-key-that-is-long-enough-0123456789"
INBOUND = "bench-inbound-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(needed, soft)), hard))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def make_staff(database_url: str, operators: int) -> list[str]:
    """Operators of the default inbox and a supervisor; their bearer tokens."""
    engine = create_engine(database_url)
    tokens = []
    async with event_sessions(engine)() as session:
        for n in range(operators):
            user = await auth.create_user(session, email=f"bench{n}@example.com", name=f"bench {n}",
                                          role=Role.operator, password="bench-password")
            assert user.id is not None
            await inbox_service.join_named(session, user_id=user.id, names=["default"])
            tokens.append(await auth.sign_in(session, secret_key=SECRET, user=user,
                                             kind=SessionKind.api, ttl_seconds=86400))
        boss = await auth.create_user(session, email="boss@example.com", name="boss",
                                      role=Role.supervisor, password="bench-password")
        tokens.append(await auth.sign_in(session, secret_key=SECRET, user=boss,
                                         kind=SessionKind.api, ttl_seconds=86400))
        await session.commit()
    await engine.dispose()
    return tokens


class Receiver:
    """One socket: it notes when each message.created frame arrives (parsed later, not here)."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.arrivals: list[tuple[float, float, str]] = []  # (perf_counter, wall clock, raw frame)
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                if '"message.created"' in raw:
                    self.arrivals.append((time.perf_counter(), time.time(), str(raw)))


async def open_sockets(url: str, tokens: list[str], count: int, after: int) -> list[Receiver]:
    receivers: list[Receiver] = []
    for start in range(0, count, 100):
        batch = await asyncio.gather(*(
            connect(f"{url}?token={tokens[n % len(tokens)]}&after={after}", compression=None,
                    proxy=None, open_timeout=60, ping_interval=None, max_queue=None)
            for n in range(start, min(count, start + 100))))
        receivers.extend(Receiver(ws) for ws in batch)
    return receivers


async def post(http: httpx.AsyncClient, key: str, body: str) -> dict:
    response = await http.post("/api/inbound", headers={
        "Authorization": f"Bearer {INBOUND}", "Idempotency-Key": key},
        json={"channel": "api", "from": {"name": "ベンチ", "email": "bench@example.jp"}, "body": body})
    response.raise_for_status()
    return response.json()


async def wait_for(receivers: list[Receiver], count: int, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while any(len(r.arrivals) < count for r in receivers):
        if time.monotonic() > deadline:
            short = [len(r.arrivals) for r in receivers if len(r.arrivals) < count]
            raise RuntimeError(f"{len(short)} of {len(receivers)} sockets are missing messages "
                               f"(they have {sorted(set(short))} of {count})")
        await asyncio.sleep(0.01)


async def measure(args: argparse.Namespace, base: str, server_pid: int) -> dict:
    tokens = args.tokens
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        first = await post(http, "warmup", "warm-up")
        rss_before = rss_kib(server_pid)
        started = time.perf_counter()
        receivers = await open_sockets(base.replace("http", "ws") + "/ws", tokens, args.sockets,
                                       after=10**9)
        connect_seconds = time.perf_counter() - started
        # Every socket is live once it has had a message: the rounds start after the last one
        # has registered, so they time delivery rather than the connects' presence writes.
        await post(http, "settle", "settle")
        await wait_for(receivers, 1, limit=120)
        for receiver in receivers:
            receiver.arrivals.clear()
        # The thousand client connections are the instrument: left to the collector, one of its
        # full passes over them (85 ms here) delayed a whole round's arrival times.
        gc.collect()
        gc.freeze()
        await asyncio.sleep(1.0)
        rss_after = rss_kib(server_pid)

        sent: list[float] = []
        post_ms: list[float] = []
        for n in range(args.rounds):
            t0 = time.perf_counter()
            await post(http, f"round-{n}", f"round {n}")
            post_ms.append((time.perf_counter() - t0) * 1000)
            sent.append(t0)
            await wait_for(receivers, n + 1)
            await asyncio.sleep(args.gap)

        from_post = [(r.arrivals[n][0] - sent[n]) * 1000 for r in receivers for n in range(args.rounds)]
        last_socket = [max(r.arrivals[n][0] for r in receivers) - sent[n] for n in range(args.rounds)]
        first_socket = [min(r.arrivals[n][0] for r in receivers) - sent[n] for n in range(args.rounds)]
        from_event = [
            (wall - datetime.fromisoformat(json.loads(raw)["at"]).timestamp()) * 1000
            for r in receivers for _, wall, raw in r.arrivals[:args.rounds]]

        burst_start = time.perf_counter()
        await asyncio.gather(*(post(http, f"burst-{n}", f"burst {n}") for n in range(args.burst)))
        await wait_for(receivers, args.rounds + args.burst, limit=120)
        burst_seconds = max(r.arrivals[-1][0] for r in receivers) - burst_start
        for receiver in receivers:
            await receiver.ws.close()
            receiver.task.cancel()
    assert first["duplicate"] is False
    frames = args.sockets * args.burst
    return {
        "sockets": args.sockets, "rounds": args.rounds,
        "connect_s": round(connect_seconds, 2),
        "delivery_from_post_ms": {"p50": round(statistics.median(from_post), 1),
                                  "p99": round(percentile(from_post, 0.99), 1),
                                  "max": round(max(from_post), 1)},
        "delivery_from_event_ms": {"p50": round(statistics.median(from_event), 1),
                                   "p99": round(percentile(from_event, 0.99), 1)},
        "post_ms_p50": round(statistics.median(post_ms), 1),
        "per_round_first_last_ms": [(round(a * 1000), round(b * 1000))
                                    for a, b in zip(first_socket, last_socket, strict=True)],
        "burst": {"messages": args.burst, "frames": frames, "seconds": round(burst_seconds, 2),
                  "frames_per_s": round(frames / burst_seconds)},
        "server_rss_mib": {"before": round(rss_before / 1024, 1), "after": round(rss_after / 1024, 1),
                           "per_socket_kib": round((rss_after - rss_before) / args.sockets, 1)},
    }


async def measure_idle(args: argparse.Namespace, base: str, server_pid: int) -> dict:
    """The server's resident memory with ``args.sockets`` sockets open and nothing happening."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await post(http, "warmup", "warm-up")
        await asyncio.sleep(2.0)
        rss_before = rss_kib(server_pid)
        receivers = await open_sockets(base.replace("http", "ws") + "/ws", args.tokens, args.sockets,
                                       after=10**9)
        # Sockets are live once they have had a message; the last ones to register may miss the
        # first, so another is posted until every socket has one.
        for n in range(30):
            await post(http, f"settle-{n}", "settle")
            with contextlib.suppress(RuntimeError):
                await wait_for(receivers, 1, limit=10)
                break
        silent = [r for r in receivers if not r.arrivals]
        samples = []
        deadline = time.monotonic() + args.idle
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            samples.append(rss_kib(server_pid))
        for receiver in receivers:
            await receiver.ws.close()
            receiver.task.cancel()
    at_rest = samples[-1]
    return {
        "sockets": args.sockets, "idle_s": args.idle,
        # Sockets no message reached (and how each one stands), should there be any.
        "silent_sockets": len(silent),
        "silent_states": sorted({f"{r.ws.state.name} {r.ws.close_code}" for r in silent}),
        "server_rss_mib": {"before_sockets": round(rss_before / 1024, 1),
                           "at_rest": round(at_rest / 1024, 1), "peak": round(max(samples) / 1024, 1),
                           "per_socket_kib": round((at_rest - rss_before) / args.sockets, 1)},
    }


def loop_factory():  # type: ignore[no-untyped-def]
    """uvloop when installed (it comes with uvicorn[standard]): the 1,000 clients are the
    instrument here, and should cost as little as they can."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--burst", type=int, default=20, help="messages posted at once at the end")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between rounds")
    parser.add_argument("--operators", type=int, default=20, help="distinct users behind the sockets")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None, help="serve with the Redis bus (with --idle)")
    parser.add_argument("--idle", type=float, default=0.0,
                        help="measure the server's memory at rest for this many seconds instead")
    args = parser.parse_args()
    raise_fd_limit(args.sockets * 2 + 256)

    with tempfile.TemporaryDirectory() as folder:
        database_url = args.database_url or f"sqlite+aiosqlite:///{folder}/bench.db"
        run_upgrade(database_url)
        args.tokens = asyncio.run(make_staff(database_url, args.operators))
        port = free_port()
        env = {**os.environ, "HELPDESK_DATABASE_URL": database_url, "HELPDESK_SECRET_KEY": SECRET,
               "HELPDESK_INBOUND_TOKEN": INBOUND, "HELPDESK_RUN_WORKERS": "false"}
        env.pop("HELPDESK_REDIS_URL", None)
        if args.idle:  # as deployed: background workers on, and Redis when asked for
            env.pop("HELPDESK_RUN_WORKERS")
            if args.redis_url:
                env["HELPDESK_REDIS_URL"] = args.redis_url
        server = subprocess.Popen(
            [sys.executable, "-c", "from helpdesk.cli import main; main()", "serve", "--port", str(port)],
            env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            with asyncio.Runner(loop_factory=loop_factory()) as runner:
                result = runner.run((measure_idle if args.idle else measure)(args, base, server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
