"""Screen-pop latency: signed Twilio voice webhook → ``call.ringing`` on the operator's socket.

Builds a SQLite database with 100k customers (one phone each) and 1M orders (one item each) by bulk
SQL, then serves the app with uvicorn in a process of its own (the embedded setup: one server
process, SQLite), while this process is the load generator: it holds the five operators' sockets
and sends inbound calls from random known customers, in assorted Japanese spellings, at a fixed
rate (open loop). Latency runs from just before the webhook request is sent until the transaction
holding ``call.ringing`` commits (noted by the server process on the shared monotonic clock), and
until the frame reaches the first offered operator's socket. CPU per call is the server process's
own, read from /proc.

    .venv/bin/python -m bench.screen_pop [--customers 100000] [--orders-per-customer 10]
        [--rate 20] [--calls 400] [--db /tmp/bench_screen_pop.db] [--reuse] [--py-spy out.svg]
        [--cprofile out.prof]
"""

import argparse
import asyncio
import base64
import cProfile
import gc
import hashlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import uvicorn
from itsdangerous import URLSafeTimedSerializer
from twilio.request_validator import RequestValidator

from helpdesk.app import SERVER_OPTIONS, create_app
from helpdesk.auth.service import TOKEN_SALT
from helpdesk.config import Settings
from helpdesk.migrations import run_upgrade

TOKEN = "bench-twilio-auth-token"
PROFILE_TO = "BENCH_SCREEN_POP_CPROFILE"
PUBLIC_URL = "https://helpdesk.example.jp"
SALES = "+815012345678"
OPERATORS = 5


def phone_of(i: int) -> str:
    return f"+8190{10_000_000 + i:08d}"


def spell(e164: str, style: int) -> str:
    """The same number as people and carriers write it."""
    national = "0" + e164[3:]
    a, b, c = national[:3], national[3:7], national[7:]
    return [e164, f"{a}-{b}-{c}", national, f"({a}) {b}-{c}",
            f"０{national[1:]}".translate(str.maketrans("0123456789", "０１２３４５６７８９"))][style % 5]


def build(path: Path, customers: int, per_customer: int) -> None:
    """Migrate, then bulk insert staff, customers, identities, orders and items, and tickets."""
    if path.exists():
        path.unlink()
    run_upgrade(f"sqlite+aiosqlite:///{path}")
    started = time.perf_counter()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = datetime.now(UTC).replace(tzinfo=None)
    with db:
        sales = db.execute("INSERT INTO inbox (name, phone_number, email_charset, created_at) "
                           "VALUES ('sales', ?, 'utf-8', ?)", (SALES, now)).lastrowid
        for op in range(1, OPERATORS + 1):
            db.execute("INSERT INTO user (id, email, name, role, language, timezone, password_hash, "
                       "is_active, failed_logins, created_at) VALUES (?, ?, ?, 'operator', 'ja', "
                       "'Asia/Tokyo', 'x', 1, 0, ?)", (op, f"op{op}@example.jp", f"op{op}", now))
            db.execute("INSERT INTO inbox_member (inbox_id, user_id) VALUES (?, ?)", (sales, op))
        db.executemany(
            "INSERT INTO customer (id, name, tags, orders_count, total_spent, first_order_at, "
            "last_order_at, rank, created_at, updated_at) VALUES (?, ?, '[]', ?, ?, ?, ?, 'A', ?, ?)",
            ((i, f"顧客{i}", per_customer, 5000 * per_customer, now - timedelta(days=per_customer),
              now, now, now) for i in range(1, customers + 1)))
        db.executemany(
            "INSERT INTO customer_identity (customer_id, kind, value, created_at) VALUES (?, 'phone', ?, ?)",
            ((i, phone_of(i), now) for i in range(1, customers + 1)))
        db.executemany(
            'INSERT INTO "order" (id, customer_id, source, number, ordered_at, status, total, currency) '
            "VALUES (?, ?, 'csv', ?, ?, 'shipped', 5000, 'JPY')",
            ((o, (o - 1) // per_customer + 1, f"O{o:08d}", now - timedelta(days=o % per_customer))
             for o in range(1, customers * per_customer + 1)))
        db.executemany(
            "INSERT INTO order_item (order_id, sku, name, quantity, unit_price) VALUES (?, ?, ?, 1, 5000)",
            ((o, f"SKU{o % 997}", f"商品{o % 997}") for o in range(1, customers * per_customer + 1)))
        # Open tickets in the called inbox for one customer in five: the pop lists them.
        db.executemany(
            "INSERT INTO ticket (id, number, subject, status, priority, channel, inbox_id, "
            "customer_id, token, version, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'normal', 'phone', ?, ?, ?, 1, ?, ?)",
            ((t, t, f"問い合わせ{t}", ("unhandled", "in_progress", "pending", "resolved")[t % 4], sales,
              t * 5 % customers + 1, f"bench-{t:08d}", now, now) for t in range(1, customers // 5 + 1)))
    db.execute("ANALYZE")
    db.close()
    print(f"built {customers:,} customers, {customers * per_customer:,} orders and items "
          f"in {time.perf_counter() - started:.1f} s")


def pin(core: int) -> None:
    """Keep this process on one core (server and load generator on different ones), so the
    scheduler moving them about does not add to the spread; no-op on a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) > 1:
        os.sched_setaffinity(0, {cores[core % len(cores)]})


def run(path: Path, calls: int, rate: float, customers: int, spy: Path | None) -> None:
    """Serve in a subprocess, drive it from here, and report."""
    pin(1)
    settings = bench_settings(path)
    port = free_port()
    commits = path.with_suffix(".commits.json")
    commits.unlink(missing_ok=True)
    server = subprocess.Popen([sys.executable, "-m", "bench.screen_pop", "--serve", str(port),
                               "--db", str(path), "--commits", str(commits)])
    try:
        wait_healthy(port)
        result = asyncio.run(_drive(settings, port, server.pid, calls, rate, customers, spy))
        server.send_signal(signal.SIGINT)  # the server writes its commit times as it stops
        server.wait(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    sent, popped, round_trip, elapsed, cpu, generator_cpu, peak_rss = result
    noted = json.loads(commits.read_text())
    latencies = _ringing_latencies(path, sent, noted["commits"])
    pauses = noted["gc"]
    socket_latencies = [popped[sid] - at for sid, at in sent.items() if sid in popped]
    assert len(latencies) == calls, (len(latencies), calls)
    assert len(socket_latencies) == calls, (len(socket_latencies), calls)
    print(f"calls {calls} at {rate:g}/s offered, {calls / elapsed:.1f}/s achieved")
    print(latency_line("webhook -> committed call.ringing    ", latencies))
    print(latency_line("webhook -> call.ringing on the socket", socket_latencies))
    print(latency_line("webhook round trip (TwiML back)      ", round_trip))
    print(f"server CPU per call {cpu / calls * 1000:.2f} ms; server peak RSS {peak_rss:.0f} MiB; "
          f"load generator CPU {generator_cpu * 1000 / calls:.2f} ms per call; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    by_generation = [[ms for gen, ms in pauses if gen == g] for g in range(3)]
    print("server garbage collections (whole run): " + ", ".join(
        f"gen{g} {len(p)} (max {max(p, default=0) * 1000:.1f} ms)" for g, p in enumerate(by_generation)))


async def _drive(settings: Settings, port: int, pid: int, calls: int, rate: float, customers: int,
                 spy: Path | None) -> tuple[dict[str, float], dict[str, float], list[float], float,
                                            float, float, float]:
    """Open the operators' sockets, send the calls at a fixed rate, note every arrival."""
    # The operators' browsers: one socket each (this also makes them online for routing).
    popped: dict[str, float] = {}
    database = Path(settings.database_url.split("///", 1)[1])
    sockets = [await OperatorSocket.connect(port, issue_token(settings.secret_key, op, database), popped)
               for op in range(1, OPERATORS + 1)]
    await asyncio.sleep(settings.ws_resume_wait_seconds + 0.5)  # live, and presence recorded
    sent: dict[str, float] = {}
    round_trip: list[float] = []
    rng = random.Random(7)
    run_id = int(time.time())
    validator = RequestValidator(TOKEN)

    def request(n: int) -> tuple[str, bytes]:
        """A signed webhook as the bytes on the wire, prepared before the clock starts."""
        sid = f"CA{run_id:010d}{n:022d}"
        params = {"CallSid": sid, "From": spell(phone_of(rng.randint(1, customers)), n), "To": SALES,
                  "CallStatus": "ringing", "Direction": "inbound"}
        signature = validator.compute_signature(PUBLIC_URL + "/telephony/twilio/voice", params)
        body = urlencode(params).encode()
        head = (f"POST /telephony/twilio/voice HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"X-Twilio-Signature: {signature}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")
        return sid, head.encode() + body

    pool = ConnectionPool(port)

    async def one(prepared: tuple[str, bytes]) -> None:
        sid, wire = prepared
        sent[sid] = time.perf_counter()
        status, text = await pool.send(wire)
        round_trip.append(time.perf_counter() - sent[sid])
        assert status == 200 and "<Client " in text, text

    for n in range(50):  # warm up connections and caches
        await one(request(10_000_000 + n))
    await asyncio.sleep(0.5)
    sent.clear()
    round_trip.clear()
    prepared = [request(n) for n in range(calls)]
    spying = _spy(pid, spy)
    cpu_began, began, own_cpu = server_cpu(pid), time.perf_counter(), time.process_time()
    tasks = []
    for n in range(calls):
        await asyncio.sleep(max(0.0, began + n / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(one(prepared[n])))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - began
    await asyncio.sleep(0.5)  # the last frames reach the sockets
    cpu = server_cpu(pid) - cpu_began
    generator_cpu = time.process_time() - own_cpu
    if spying is not None:
        spying.send_signal(signal.SIGINT)
        spying.wait(timeout=60)
    pool.close()
    for operator in sockets:
        operator.close()
    return sent, popped, round_trip, elapsed, cpu, generator_cpu, peak_rss_mib(pid)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to the server, one request at a time on each.

    A plain socket client: the generator's own CPU per request stays far below the server's.
    """

    IDLE_SECONDS = 2.0  # well inside the server's keep-alive timeout (5 s)

    def __init__(self, port: int) -> None:
        self.port = port
        self.idle: list[tuple[float, asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.all: list[asyncio.StreamWriter] = []

    async def send(self, wire: bytes) -> tuple[int, str]:
        """Send one request; its status and body."""
        while self.idle and self.idle[0][0] < time.monotonic() - self.IDLE_SECONDS:
            self.idle.pop(0)[2].close()  # the server may be closing it: do not race it
        if self.idle:
            _, reader, writer = self.idle.pop()
        else:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.all.append(writer)
        writer.write(wire)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        self.idle.append((time.monotonic(), reader, writer))
        return status, body.decode()

    def close(self) -> None:
        """Close every connection."""
        for writer in self.all:
            writer.close()


def bench_settings(path: Path) -> Settings:
    """The server's settings, also used by the generator for the socket tokens."""
    return Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{path}",
                    public_url=PUBLIC_URL, twilio_auth_token=TOKEN, run_workers=False)


def serve(path: Path, port: int, commits: Path) -> None:
    """The server process: the app under uvicorn, noting when each event seq commits and how
    long each garbage collection paused it."""
    pin(0)
    app = create_app(bench_settings(path))
    committed: dict[int, float] = {}
    pauses: list[tuple[int, float]] = []
    started: dict[str, float] = {}

    def collecting(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started["at"] = time.perf_counter()
        elif "at" in started:
            pauses.append((info["generation"], time.perf_counter() - started.pop("at")))

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **SERVER_OPTIONS)
    server = uvicorn.Server(config)

    async def main() -> None:
        serving = asyncio.create_task(server.serve())
        for _ in range(6000):
            if server.started or serving.done():
                break
            await asyncio.sleep(0.01)
        app.state.bus.listen(lambda seq: committed.setdefault(seq, time.perf_counter()))
        gc.callbacks.append(collecting)
        await serving

    profile_to = os.environ.get(PROFILE_TO)
    profiler = cProfile.Profile() if profile_to else None
    if profiler is not None:
        profiler.enable()
    try:
        # The event loop `helpdesk serve` runs on: uvloop, which uvicorn[standard] installs.
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(main())
    except KeyboardInterrupt:  # uvicorn hands the stopping signal on once it has shut down
        pass
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(str(profile_to))
        commits.write_text(json.dumps({"commits": committed, "gc": pauses}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(port: int) -> None:
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def server_cpu(pid: int) -> float:
    """User plus system CPU seconds the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _spy(pid: int, out: Path | None) -> subprocess.Popen[bytes] | None:
    """Sample the server with py-spy while the calls run, when asked to."""
    if out is None:
        return None
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    kind = {".json": "speedscope", ".txt": "raw"}.get(out.suffix, "flamegraph")
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "200", "--nonblocking",
                             "--output", str(out), "--format", kind])


def latency_line(name: str, values: list[float]) -> str:
    return (f"{name}: p50 {_ms(values, .5):6.2f} ms  p99 {_ms(values, .99):6.2f} ms  "
            f"max {max(values) * 1000:6.2f} ms")


def _ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def issue_token(secret: str, user_id: int, database: Path) -> str:
    """A bearer token for an operator the bench inserted by SQL, and the session row it names."""
    sid = secrets.token_urlsafe(32)
    now = datetime.now(UTC).replace(tzinfo=None)
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO auth_session (secret_hash, user_id, kind, created_at, expires_at) "
                   "VALUES (?, ?, 'api', ?, ?)", (hashlib.sha256(sid.encode()).hexdigest(), user_id,
                                                  str(now), str(now + timedelta(days=1))))
    db.close()
    return URLSafeTimedSerializer(secret, salt=TOKEN_SALT).dumps({"uid": user_id, "sid": sid})


class OperatorSocket(asyncio.Protocol):
    """An operator's browser socket, reduced to what the measurement needs (RFC 6455).

    A ``call.ringing`` frame is noted the moment its bytes arrive, in ``data_received``, before
    any client library's work: a full client spent about a millisecond of this process's time
    per frame, which ended up in the measured latency. Pings are answered as live.js answers
    them; everything else is read and dropped.
    """

    def __init__(self, popped: dict[str, float]) -> None:
        self.popped = popped
        self.buffer = bytearray()
        self.upgraded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    @classmethod
    async def connect(cls, port: int, token: str, popped: dict[str, float]) -> "OperatorSocket":
        """Open ``/ws`` as the operator whose ``token`` is given and wait for the upgrade."""
        loop = asyncio.get_running_loop()
        _, operator = await loop.create_connection(lambda: cls(popped), "127.0.0.1", port)
        key = base64.b64encode(os.urandom(16)).decode()
        assert operator.transport is not None
        operator.transport.write(
            f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            .encode())
        await asyncio.wait_for(operator.upgraded, 10)
        return operator

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        at = time.perf_counter()
        self.buffer += data
        if not self.upgraded.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[:end + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(RuntimeError(head.decode(errors="replace")))
                return
            self.upgraded.set_result(None)
        while (frame := self._next_frame()) is not None:
            opcode, payload = frame
            if opcode == 0x1:
                self._on_text(payload, at)
            elif opcode == 0x9:
                self._send(0xA, payload)

    def _next_frame(self) -> tuple[int, bytes] | None:
        buffer = self.buffer
        if len(buffer) < 2:
            return None
        assert buffer[0] & 0x80 and not buffer[1] & 0x80, "the server sends whole, unmasked frames"
        length, offset = buffer[1] & 0x7F, 2
        if length >= 126:
            offset = 4 if length == 126 else 10
            if len(buffer) < offset:
                return None
            length = int.from_bytes(buffer[2:offset], "big")
        if len(buffer) < offset + length:
            return None
        frame = buffer[0] & 0x0F, bytes(buffer[offset:offset + length])
        del buffer[:offset + length]
        return frame

    def _on_text(self, payload: bytes, at: float) -> None:
        if b'"call.ringing"' in payload:
            frame = json.loads(payload)
            if frame["type"] == "call.ringing":
                self.popped.setdefault(frame["data"]["call"]["call_id"], at)
        elif b'"type":"ping"' in payload:
            self._send(0x1, b'{"type":"pong"}')

    def _send(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None and len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        """Say goodbye (close code 1000) and drop the connection."""
        if self.transport is not None and not self.transport.is_closing():
            self._send(0x8, (1000).to_bytes(2, "big"))
            self.transport.close()


def _ringing_latencies(path: Path, sent: dict[str, float], committed: dict[str, float]) -> list[float]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT seq, json_extract(data, '$.call.call_id') FROM event "
                      "WHERE type = 'call.ringing'").fetchall()
    db.close()
    return [committed[str(seq)] - sent[sid] for seq, sid in rows
            if sid in sent and str(seq) in committed]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--orders-per-customer", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--db", type=Path, default=Path("/tmp/bench_screen_pop.db"))
    parser.add_argument("--reuse", action="store_true", help="keep an already built database")
    parser.add_argument("--py-spy", type=Path, help="sample the server into this flame graph")
    parser.add_argument("--cprofile", type=Path, help="profile the server (cProfile) into this file")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the server process's port
    parser.add_argument("--commits", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cprofile:
        os.environ[PROFILE_TO] = str(args.cprofile)  # read by the server process
    if args.serve:
        serve(args.db, args.serve, args.commits)
        return
    if not (args.reuse and args.db.exists()):
        build(args.db, args.customers, args.orders_per_customer)
    run(args.db, args.calls, args.rate, args.customers, args.py_spy)


if __name__ == "__main__":
    main()
