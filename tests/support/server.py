"""Real servers on loopback ports: the app under test, and small provider stubs beside it."""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from helpdesk.app import SERVER_OPTIONS, create_app
from helpdesk.auth.throttle import MemoryCounters
from helpdesk.config import Settings

INBOUND_TOKEN = "test-inbound-token"
SECRET = "test-secret-key-that-is-long-enough-0123456789"


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for a test server; providers stay unconfigured unless a test names them."""
    values: dict[str, object] = {
        "database_url": database_url, "secret_key": SECRET, "inbound_token": INBOUND_TOKEN,
        "public_url": "http://testserver", "run_workers": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_in_thread(server: uvicorn.Server) -> threading.Thread:
    """Run ``server`` from a thread of its own (its own event loop) and wait until it listens."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(500):
        if server.started:
            return thread
        threading.Event().wait(0.01)
    raise RuntimeError("test server did not start")


def stop_in_thread(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)


@contextmanager
def serving(app: Any, port: int, **options: Any) -> Iterator[uvicorn.Server]:
    """An ASGI app served on ``127.0.0.1:port`` for the duration of the block."""
    config = uvicorn.Config(app, host="127.0.0.1", port=port, **{"log_level": "warning", **options})
    server = uvicorn.Server(config)
    thread = start_in_thread(server)
    try:
        yield server
    finally:
        stop_in_thread(server, thread)


class LiveServer:
    """Uvicorn serving the app on a loopback port from its own thread and event loop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        RUNNING.append(self)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="on", **SERVER_OPTIONS)
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    def __enter__(self) -> "LiveServer":
        self.thread = start_in_thread(self.server)
        # FastAPI builds its routing tables at the first request. Two apps in one process (a
        # test's two "servers") building them at once from two threads race over the parameter
        # declarations they share, and pydantic warns; one request here builds them while this
        # server is the only one starting.
        httpx.get(f"{self.url}/healthz", timeout=30).raise_for_status()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.thread is not None:
            stop_in_thread(self.server, self.thread)
        RUNNING.remove(self)

    def forget_sign_in_failures(self) -> None:
        """Start the next test with no failed sign-ins remembered, as its database starts empty."""
        if isinstance(getattr(self.app.state, "login_counters", None), MemoryCounters):
            self.app.state.login_counters = MemoryCounters()


RUNNING: list[LiveServer] = []


def forget_all_sign_in_failures() -> None:
    for live in RUNNING:
        live.forget_sign_in_failures()
