"""Shared fixtures: a real database (SQLite, or PostgreSQL via HELPDESK_TEST_DATABASE_URL), a real
server on a loopback port, and helpers that create staff and tokens.

The server commits for real, so tests cannot hide their data in a rolled-back transaction;
instead every table is emptied before each test.
"""

import asyncio
import os
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import SQLModel

import helpdesk.models  # noqa: F401  (every table, for reset)
from helpdesk.app import SERVER_OPTIONS, create_app
from helpdesk.auth import service as auth
from helpdesk.auth.models import Role, SessionKind, User
from helpdesk.auth.throttle import MemoryCounters
from helpdesk.config import Settings
from helpdesk.db import create_engine
from helpdesk.inboxes import service as inbox_service
from helpdesk.migrations import run_upgrade
from helpdesk.realtime.log import event_sessions
from helpdesk.storage.sessions import begin_write

INBOUND_TOKEN = "test-inbound-token"
SECRET = "test-secret-key-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"


def _database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("HELPDESK_TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated database, from scratch for this run."""
    url = _database_url(tmp_path_factory)
    if url.startswith("postgresql"):
        asyncio.run(_empty_postgresql(url))
    run_upgrade(url)
    return url


async def _empty_postgresql(url: str) -> None:
    """Drop whatever an earlier run left, whichever revisions it had."""
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
    await engine.dispose()


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
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LiveServer":
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                # FastAPI builds its routing tables at the first request. Two apps in one
                # process (a test's two "servers") building them at once from two threads race
                # over the parameter declarations they share, and pydantic warns; one request
                # here builds them while this server is the only one starting.
                httpx.get(f"{self.url}/healthz", timeout=30).raise_for_status()
                return self
            threading.Event().wait(0.01)
        raise RuntimeError("test server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        RUNNING.remove(self)

    def forget_sign_in_failures(self) -> None:
        """Start the next test with no failed sign-ins remembered, as its database starts empty."""
        if isinstance(getattr(self.app.state, "login_counters", None), MemoryCounters):
            self.app.state.login_counters = MemoryCounters()


RUNNING: list[LiveServer] = []


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[LiveServer]:
    """One real server for the whole run."""
    with LiveServer(make_settings(database_url)) as live:
        yield live




async def reset(engine: AsyncEngine) -> None:
    """Empty every table and put back what the migrations seed."""
    for live in RUNNING:
        live.forget_sign_in_failures()
    tables = [t.name for t in reversed(SQLModel.metadata.sorted_tables)]
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{name}"' for name in tables)
            await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                await conn.execute(text(f'DELETE FROM "{name}"'))
            await conn.execute(text("INSERT INTO search_entry_fts(search_entry_fts) VALUES ('rebuild')"))
        await conn.execute(text(
            "INSERT INTO counter (name, value) VALUES ('event_seq', 0), ('ticket_number', 1000)"))
        await conn.execute(text(
            "INSERT INTO inbox (name, email_charset, created_at) "
            "VALUES ('default', 'utf-8', CURRENT_TIMESTAMP)"))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database, emptied before the test."""
    eng = create_engine(database_url)
    await reset(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session for arranging and checking data (commit to make it visible to the server)."""
    async with event_sessions(engine, read_only=True)() as session:
        yield session


# What Staff signed each user in with, by user id: a bearer token and a page session cookie,
# each naming a live server-side session (ids start over with each emptied database).
_CREDENTIALS: dict[int, tuple[str, str]] = {}
TTL = 12 * 3600


@dataclass
class Staff:
    """Creates staff accounts, signed in once through the API and once in a browser."""

    session: AsyncSession
    made: list[User] = field(default_factory=list)

    async def create(self, name: str = "op", role: Role = Role.operator,
                     inboxes: list[str] | None = None) -> User:
        await begin_write(self.session)
        user = await auth.create_user(self.session, email=f"{name}@example.com", name=name,
                                      role=role, password=PASSWORD)
        assert user.id is not None
        await inbox_service.join_named(self.session, user_id=user.id, names=inboxes or [])
        api, browser = [await auth.sign_in(self.session, secret_key=SECRET, user=user, kind=kind,
                                           ttl_seconds=TTL)
                        for kind in (SessionKind.api, SessionKind.browser)]
        await self.session.commit()
        assert user.id is not None
        _CREDENTIALS[user.id] = (api, browser)
        self.made.append(user)
        return user

    @staticmethod
    def token(user: User) -> str:
        """The user's bearer token."""
        assert user.id is not None
        return _CREDENTIALS[user.id][0]

    @staticmethod
    def cookie(user: User) -> str:
        """The user's session cookie value."""
        assert user.id is not None
        return _CREDENTIALS[user.id][1]

    @classmethod
    def headers(cls, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {cls.token(user)}"}


@pytest.fixture
async def staff(db: AsyncSession) -> Staff:
    return Staff(db)


@pytest.fixture
async def http(server: LiveServer, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A real HTTP client against the live server, on an emptied database."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        yield client


INBOUND_HEADERS = {"Authorization": f"Bearer {INBOUND_TOKEN}"}


def inbound_body(body: str = "注文の件で質問です", **sender: str) -> dict[str, object]:
    return {"channel": "api", "from": sender or {"name": "山田 太郎", "email": "taro@example.jp"},
            "body": body}


async def post_inbound(client: httpx.AsyncClient, key: str, body: dict[str, object] | None = None,
                       ) -> httpx.Response:
    return await client.post("/api/inbound", json=body or inbound_body(),
                             headers={**INBOUND_HEADERS, "Idempotency-Key": key})


ROOT = Path(__file__).resolve().parent.parent
