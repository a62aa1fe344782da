"""Small helpers shared by the benchmarks: percentiles, a server subprocess, memory readings."""

import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def percentile(samples: Sequence[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    index = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(name: str, seconds: Sequence[float], wall: float | None = None) -> str:
    """One line: count, p50, p99, max in ms, and throughput when the wall time is known."""
    ms = [s * 1000 for s in seconds]
    line = (f"{name}: n={len(ms)} p50={percentile(ms, 50):.2f}ms p99={percentile(ms, 99):.2f}ms "
            f"max={max(ms):.2f}ms mean={statistics.fmean(ms):.2f}ms")
    if wall:
        line += f" throughput={len(ms) / wall:.0f}/s"
    return line


def rss_mib(pid: int) -> float:
    """Resident memory of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """``helpdesk serve`` in a subprocess, on a loopback port."""

    def __init__(self, env: dict[str, str], workers: int = 1, *, python: str = sys.executable,
                 cwd: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.workers = workers
        self.python = python  # another checkout's interpreter, to compare two versions
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "Server":
        self.process = subprocess.Popen(
            [self.python, "-m", "helpdesk.cli", "serve", "--port", str(self.port),
             "--workers", str(self.workers)], env=self.env, cwd=self.cwd,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz").status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
