"""The ``helpdesk`` command, run as a user would run it."""

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import free_port

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


def test_serve_demo_starts_with_demo_data(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"}
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen([*HELPDESK, "serve", "--demo", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
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
    finally:
        server.terminate()
        server.wait(timeout=20)
        log.close()
