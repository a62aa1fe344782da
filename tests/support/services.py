"""Outside services the tests need: the shared Redis, a private redis-server, Chromium.

A missing one skips its tests, unless ``HELPDESK_TEST_REQUIRE_SERVICES=1`` (CI), when it fails them.
"""

import os
import shutil
import subprocess
import uuid
from typing import Any

import pytest
import redis

from tests.support.server import free_port
from tests.support.waiting import wait_until_sync

REQUIRE_SERVICES = os.environ.get("HELPDESK_TEST_REQUIRE_SERVICES") == "1"


def unavailable(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (HELPDESK_TEST_REQUIRE_SERVICES=1)")
    pytest.skip(reason)


def shared_redis_url() -> str:
    """The shared test Redis: ``HELPDESK_TEST_REDIS_URL``, else db 1 of the local one.

    xdist workers share it safely: every test names its own channel or key prefix
    (``unique_prefix``), so no two tests, in one worker or two, see each other's keys.
    """
    url = os.environ.get("HELPDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        unavailable(f"Redis at {url} is not reachable: {exc}")
    finally:
        client.close()
    return url


def unique_prefix() -> str:
    """A Redis channel or key prefix no other test (or worker) uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


def redis_overrides(url: str) -> dict[str, Any]:
    """Settings that put servers on one Redis channel of their own (tests may run side by side)."""
    return {"redis_url": url, "redis_channel": unique_prefix()}


def _answers_ping(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


class RedisProcess:
    """A throwaway redis-server on its own port, which a test may kill and start again."""

    def __init__(self) -> None:
        if shutil.which("redis-server") is None:
            unavailable("redis-server is not installed")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            wait_until_sync(lambda: _answers_ping(client), within=5)
        except AssertionError:
            raise RuntimeError("redis-server did not start") from None
        finally:
            client.close()

    def kill(self) -> None:
        """Stop it the hard way, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None
