"""The ``helpdesk`` command, run as a user would run it."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from tests.support.server import free_port
from tests.support.waiting import wait_until_sync

HELPDESK = [sys.executable, "-m", "helpdesk.cli"]


def run_cli(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELPDESK_DATABASE_URL": database_url}
    return subprocess.run([*HELPDESK, *args], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


async def test_user_create_then_sign_in(http: httpx.AsyncClient, database_url: str) -> None:
    created = run_cli(["user", "create", "--email", "Kanri@Example.com", "--name", "管理 者",
                       "--role", "admin", "--password", "s3cret-pass", "--inbox", "default"],
                      database_url)
    assert created.returncode == 0, created.stderr
    assert "kanri@example.com" in created.stdout
    token = await http.post("/api/auth/token",
                            json={"email": "kanri@example.com", "password": "s3cret-pass"})
    assert token.status_code == 200
    duplicate = run_cli(["user", "create", "--email", "kanri@example.com", "--name", "x",
                         "--password", "another-pass"], database_url)
    assert duplicate.returncode == 1 and "exists" in duplicate.stderr
    unknown_inbox = run_cli(["user", "create", "--email", "o@example.com", "--name", "o",
                             "--password", "another-pass", "--inbox", "nope"], database_url)
    assert unknown_inbox.returncode == 1 and "unknown inbox" in unknown_inbox.stderr


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz").status_code == 200
    except httpx.TransportError:
        return False


def test_serve_demo_starts_with_demo_data(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([*HELPDESK, "serve", "--demo", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_sync(lambda: _healthy(base) or server.poll() is not None, within=90, interval=0.2)
        assert server.poll() is None, (tmp_path / "serve.log").read_text()
        token = httpx.post(f"{base}/api/auth/token",
                           json={"email": "supervisor@example.com", "password": "helpdesk-demo"})
        assert token.status_code == 200, token.text
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        counts = httpx.get(f"{base}/api/tickets/counts", headers=headers).json()
        assert all(n > 0 for n in counts.values()), counts  # every status is represented
        channels = {t["channel"] for t in httpx.get(f"{base}/api/tickets", headers=headers,
                                                    params={"limit": 200}).json()["items"]}
        assert channels >= {"email", "chat", "line", "sms", "phone", "api"}
        _looks_like_a_week(base, headers)
        _providers_answer_without_restart(base)
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()


def _looks_like_a_week(base: str, headers: dict[str, str]) -> None:
    """Threads of several messages over several days, templates, calls, kana that finds people."""
    items = httpx.get(f"{base}/api/tickets", headers=headers, params={"limit": 200}).json()["items"]
    opened = {t["created_at"][:10] for t in items}
    assert len(opened) >= 5, opened  # not all at the same time
    threads = [httpx.get(f"{base}/api/tickets/{t['id']}", headers=headers).json()["messages"]
               for t in items[:30]]
    long_ones = [m for m in threads if len(m) >= 3]
    assert len(long_ones) >= 5
    assert any(len({msg["created_at"][:10] for msg in m}) >= 2 for m in long_ones)
    assert any(msg["direction"] == "out" and not msg["internal"] for m in threads for msg in m)
    kana = httpx.get(f"{base}/api/customers", headers=headers, params={"q": "サトウ"}).json()
    assert kana["items"], kana
    page = httpx.post(f"{base}/api/auth/token",
                      json={"email": "admin@example.com", "password": "helpdesk-demo"}).json()
    admin = {"Authorization": f"Bearer {page['access_token']}"}
    templates = httpx.get(f"{base}/admin/templates", headers=admin).text
    assert "発送のご案内" in templates and "返品・交換のご案内" in templates
    channels = httpx.get(f"{base}/admin/channels", headers=admin).text
    assert base in channels  # the port actually served, not 8000
    calls = httpx.get(f"{base}/api/calls", headers=admin, params={"limit": 100}).json()
    assert len(calls["items"]) >= 20


def _providers_answer_without_restart(base: str) -> None:
    """The demo sets the CTI and inbound tokens, and knows the port it serves."""
    inbound = httpx.post(f"{base}/api/inbound", headers={
        "Authorization": "Bearer demo-inbound", "Idempotency-Key": "demo-check"},
        json={"channel": "api", "from": {"name": "確認 太郎", "email": "check@example.jp"},
              "body": "デモの確認です"})
    assert inbound.status_code == 201, inbound.text
    cti = httpx.post(f"{base}/telephony/cti/demo-cti", data={
        "event": "newCall", "direction": "in", "callId": "demo-check", "from": "09010727576",
        "to": "0312345678"})
    assert cti.status_code == 200, cti.text


def test_serve_says_plainly_when_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'p.db'}",
               "HELPDESK_PORT": str(port)}
        done = subprocess.run([*HELPDESK, "serve"], env=env, capture_output=True, text=True,
                              timeout=60, check=False)
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in done.stderr
    assert f"--port {port + 1}" in done.stderr and "Errno" not in done.stderr


def test_the_serving_process_carries_no_migration_tool_nor_an_unused_provider_client() -> None:
    # ``serve`` migrates in a child process; Twilio's REST client is imported when one is made.
    # Each would otherwise stay in every worker's memory (about 8 and 6.5 MiB).
    loaded = subprocess.run([sys.executable, "-c", (
        "import sys, helpdesk.cli, helpdesk.app; helpdesk.app.create_app(); "
        "print(','.join(m for m in ('alembic', 'helpdesk.migrations', 'twilio.rest') if m in sys.modules))")],
        capture_output=True, text=True, timeout=120, check=True)
    assert loaded.stdout.strip() == ""


def test_serve_stops_with_the_reason_when_the_database_cannot_be_migrated(tmp_path: Path) -> None:
    env = {**os.environ, "HELPDESK_DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:1/none",
           "HELPDESK_PORT": str(free_port())}
    done = subprocess.run([*HELPDESK, "serve"], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 1
    assert "Connect call failed" in done.stderr or "refused" in done.stderr.lower(), done.stderr[-2000:]
