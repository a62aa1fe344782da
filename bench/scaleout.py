"""Scale-out: POST /api/inbound against N ``helpdesk serve`` processes on PostgreSQL + Redis,
compared with one embedded process (SQLite, in-process bus), with operator sockets connected.

Each worker is its own ``helpdesk serve`` process on its own port (as behind nginx); clients
post round-robin across them, and the sockets are spread across them too. Every socket must
receive every posted message exactly once, in strictly increasing seq order: the run fails
otherwise. Prints throughput, p50/p99 latency, server CPU per message and RSS per worker.

    .venv/bin/python bench/scaleout.py --database-url postgresql+asyncpg://postgres@127.0.0.1/bench \\
        --redis-url redis://127.0.0.1:6379/5 --workers 2 --clients 8 32 --messages 2000 --sockets 200
    .venv/bin/python bench/scaleout.py --embedded --clients 8 32     # the embedded baseline
"""

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import INBOUND, SECRET, make_staff, raise_fd_limit  # noqa: E402
from bench.stats import free_port, rss_mib, summary  # noqa: E402
from helpdesk.migrations import run_upgrade  # noqa: E402


class Follower:
    """One operator socket that, like the page script, reconnects and resumes after the last seq
    it had when it is closed (a socket the server found too slow is closed with 4429)."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.arrivals: list[dict[str, Any]] = []  # message.created frames
        self.last: int | None = None
        self.reconnects = 0
        self.live = asyncio.Event()
        self.task = asyncio.create_task(self.run())

    async def run(self) -> None:
        while True:
            after = 10**9 if self.last is None else self.last  # 10**9: from when it joined
            with contextlib.suppress(Exception):
                async with connect(f"{self.url}?token={self.token}&after={after}", compression=None,
                                   proxy=None, open_timeout=120, ping_interval=None, max_queue=None) as ws:
                    self.live.set()
                    async for raw in ws:
                        if '"seq"' in raw:
                            frame = json.loads(raw)
                            self.last = frame["seq"]
                            if frame["type"] == "message.created":
                                self.arrivals.append(frame)
            self.reconnects += 1
            await asyncio.sleep(0.1)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_workers(count: int, env: dict[str, str], folder: str) -> list[tuple[subprocess.Popen[bytes], str]]:
    """``count`` serve processes, each on its own port; waits until all answer /healthz."""
    workers = []
    for _ in range(count):
        port = free_port()
        process = subprocess.Popen(
            [sys.executable, "-c", "from helpdesk.cli import main; main()", "serve", "--port", str(port)],
            env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        workers.append((process, f"http://127.0.0.1:{port}"))
    for _, base in workers:
        for _ in range(1200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"{base} did not start")
    return workers


async def drive(bases: list[str], count: int, clients: int,
                prefix: str) -> tuple[list[float], float, set[int]]:
    """Post ``count`` messages with ``clients`` concurrent clients, round-robin over ``bases``."""
    latencies: list[float] = []
    ids: set[int] = set()
    numbers = iter(range(count))
    http = [httpx.AsyncClient(base_url=base, timeout=300) for base in bases]

    async def client(n: int) -> None:
        for i in numbers:
            started = time.perf_counter()
            for attempt in range(3):  # a kept-alive connection the server just closed: send again
                try:
                    response = await http[(n + i) % len(http)].post("/api/inbound", headers={
                        "Authorization": f"Bearer {INBOUND}", "Idempotency-Key": f"{prefix}-{i}"}, json={
                        "channel": "api", "external_id": f"{prefix}-{i}", "body": f"返品の件 {prefix} {i}",
                        "from": {"name": f"顧客 {i}", "email": f"{prefix}-{i}@example.jp"}})
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            latencies.append(time.perf_counter() - started)
            assert response.status_code in (200, 201), response.text  # 200: the retry of a 201
            ids.add(response.json()["message_id"])

    started = time.perf_counter()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.perf_counter() - started
    for each in http:
        await each.aclose()
    return latencies, wall, ids


def check_delivery(receivers: list[Follower], ids: set[int], limit: float) -> str:
    """Every socket had every message of ``ids`` once, with seqs strictly increasing."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if all(len(r.arrivals) >= len(ids) for r in receivers):
            break
        time.sleep(0.05)
    for n, receiver in enumerate(receivers):
        frames = list(receiver.arrivals)
        seqs = [frame["seq"] for frame in frames]
        got = [frame["data"]["message_id"] for frame in frames]
        if any(b <= a for a, b in itertools.pairwise(seqs)):
            raise RuntimeError(f"socket {n}: seqs out of order")
        if sorted(got) != sorted(ids):
            raise RuntimeError(f"socket {n}: {len(got)} frames for {len(ids)} messages "
                               f"({len(set(got) - ids)} unknown, {len(ids - set(got))} missing)")
    reconnects = sum(r.reconnects for r in receivers)
    return (f"{len(receivers)} sockets each had all {len(ids)} messages once, in seq order "
            f"({reconnects} reconnects with resume)")


async def sample_waits(database_url: str, stop: asyncio.Event) -> collections.Counter[str]:
    """What PostgreSQL's backends for this database are doing, sampled every 10 ms."""
    import asyncpg

    url = make_url(database_url)
    conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username,
                                 password=url.password, database=url.database)
    seen: collections.Counter[str] = collections.Counter()
    try:
        while not stop.is_set():
            for row in await conn.fetch(
                    "SELECT coalesce(wait_event_type || ':' || wait_event, 'on CPU') AS wait,"
                    " left(regexp_replace(query, '\\s+', ' ', 'g'), 50) AS query FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND state = 'active'"):
                seen[f"{row['wait']:<28} {row['query']}"] += 1
            await asyncio.sleep(0.01)
    finally:
        await conn.close()
    return seen


class BackendCpu:
    """CPU used by PostgreSQL's backends for this database while driven, read from /proc (the
    server must run on this host), and how many new backends (connections) were started."""

    def __init__(self, database_url: str) -> None:
        self.url = make_url(database_url)
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.sessions = 0

    async def sample(self, stop: asyncio.Event) -> None:
        import asyncpg

        conn = await asyncpg.connect(host=self.url.host, port=self.url.port, user=self.url.username,
                                     password=self.url.password, database=self.url.database)
        sessions = "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        try:
            started = await conn.fetchval(sessions)
            while not stop.is_set():
                for pid in await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname ="
                                            " current_database() AND pid <> pg_backend_pid()"):
                    with contextlib.suppress(OSError):
                        used = cpu_seconds(pid["pid"])
                        self.first.setdefault(pid["pid"], used)
                        self.last[pid["pid"]] = used
                await asyncio.sleep(0.2)
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            self.sessions = int(await conn.fetchval(sessions) - started)
        finally:
            await conn.close()

    @property
    def used(self) -> float:
        # A backend's CPU before its first sample (its start) is missed: a lower bound.
        return sum(self.last[pid] - self.first[pid] for pid in self.last)


async def scenario(args: argparse.Namespace, bases: list[str], pids: list[int], tokens: list[str]) -> None:
    receivers = [Follower(bases[n % len(bases)].replace("http", "ws") + "/ws", tokens[n % len(tokens)])
                 for n in range(args.sockets)]
    for receiver in receivers:
        await receiver.live.wait()
    await asyncio.sleep(1.0)
    for clients in args.clients:
        for receiver in receivers:
            receiver.arrivals.clear()
        for receiver in receivers:
            receiver.reconnects = 0
        cpu = [cpu_seconds(pid) for pid in pids]
        stop = asyncio.Event()
        sampler = (asyncio.create_task(sample_waits(args.database_url, stop))
                   if args.sample_waits and not args.embedded else None)
        backends = None if args.embedded else BackendCpu(args.database_url)
        backend_task = asyncio.create_task(backends.sample(stop)) if backends else None
        latencies, wall, ids = await drive(bases, args.messages, clients, f"c{clients}-{time.time_ns()}")
        used = sum(cpu_seconds(pid) for pid in pids) - sum(cpu)
        stop.set()
        if backends is not None and backend_task is not None:
            await backend_task
            print(f"  PostgreSQL backends' CPU per message: {backends.used / len(ids) * 1000:.2f} ms"
                  f" ({len(backends.last)} backends seen, {backends.sessions} connections opened)")
        if sampler is not None:
            print("  PostgreSQL backends while driven (samples, wait, statement):")
            for line, count in (await sampler).most_common(8):
                print(f"    {count:6d} {line}")
        print(summary(f"POST /api/inbound, {len(bases)} worker(s), {clients} clients", latencies, wall))
        print(f"  server CPU per message: {used / len(ids) * 1000:.2f} ms; RSS per worker: "
              + ", ".join(f"{rss_mib(pid):.0f} MiB" for pid in pids))
        print("  " + await asyncio.to_thread(check_delivery, receivers, ids, 120))
    for receiver in receivers:
        receiver.task.cancel()
    await asyncio.gather(*(r.task for r in receivers), return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedded", action="store_true", help="one process on SQLite, no Redis")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database")
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--sample-waits", action="store_true", help="sample pg_stat_activity (PostgreSQL)")
    parser.add_argument("--code", default=None,
                        help="serve another checkout's helpdesk (put first on PYTHONPATH)")
    args = parser.parse_args()
    raise_fd_limit(args.sockets * 2 + 512)
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "HELPDESK_SECRET_KEY": SECRET, "HELPDESK_INBOUND_TOKEN": INBOUND}
        if args.embedded:
            database_url, workers = f"sqlite+aiosqlite:///{folder}/bench.db", 1
            env.pop("HELPDESK_REDIS_URL", None)
        else:
            if not (args.database_url and args.redis_url):
                parser.error("--database-url and --redis-url are needed unless --embedded")
            database_url, workers = args.database_url, args.workers
            env["HELPDESK_REDIS_URL"] = args.redis_url
        env["HELPDESK_DATABASE_URL"] = database_url
        if args.code:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.code, env.get("PYTHONPATH")]))
        if args.code:  # that checkout's migrations: its serve refuses revisions it does not know
            subprocess.run([sys.executable, "-c", "import sys; from helpdesk.migrations import run_upgrade;"
                            " run_upgrade(sys.argv[1])", database_url], env=env, cwd=folder, check=True)
        else:
            run_upgrade(database_url)
        tokens = asyncio.run(make_staff(database_url, 20))
        processes = start_workers(workers, env, folder)
        try:
            asyncio.run(scenario(args, [base for _, base in processes],
                                 [p.pid for p, _ in processes], tokens))
        finally:
            for process, _ in processes:
                process.terminate()
            for process, _ in processes:
                process.wait(timeout=30)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
