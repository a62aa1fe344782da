"""``bench/compare.py`` runs against this project alone and prints its table of medians."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.db import create_engine
from helpdesk.realtime.log import event_sessions
from helpdesk.tickets.models import Ticket
from tests.support import ROOT
from tests.support.server import INBOUND_TOKEN, LiveServer, make_settings
from tests.support.staff import PASSWORD, Staff


def run_compare(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench.compare", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, check=False)


def table_rows(output: str) -> dict[str, list[str]]:
    """The printed table, by scenario: the other side's cell, ours, and the ratio."""
    return {cells[0]: cells[1:] for line in output.splitlines() if line.startswith("| ")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}


async def test_compare_drives_our_side_alone_and_prints_the_table(
        server: LiveServer, http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    await staff.create("boss", role=Role.supervisor)
    done = await asyncio.to_thread(
        run_compare, "--ours", server.url, "--ours-pid", str(os.getpid()),
        "--ours-email", "boss@example.com", "--ours-password", PASSWORD, "--inbound-token", INBOUND_TOKEN,
        "--rounds", "2", "--clients", "1,3", "--creates", "4", "--mails", "3", "--reads", "3",
        "--warmup", "0")
    assert done.returncode == 0, done.stderr
    assert sum(line.startswith("round ") for line in done.stdout.splitlines()) == 2
    rows = table_rows(done.stdout)
    assert rows["scenario"] == ["django-helpdesk", "this project", "ratio"]
    for scenario in ("create, 1 clients", "create, 3 clients", "email ingest, 3 Japanese mails, 8 clients"):
        other, ours, ratio = rows[scenario]
        assert (other, ratio) == ("—", "") and ours.endswith(" /s") and float(ours.split()[0]) > 0
    assert rows["email ingest, 3 Japanese mails, 8 clients, p99"][1].endswith(" ms")
    for scenario in ("ticket list", "search 返品", "search refund", "supervisor board"):
        assert rows[f"{scenario}, p99"][1].endswith(" ms")
    assert rows["server CPU per created ticket"][1].endswith(" ms")
    assert rows["server RSS after the round"][1].endswith(" MiB")
    # Two rounds of four tickets at each of two client counts, and three mails each round.
    assert await db.scalar(select(func.count()).select_from(Ticket)) == 2 * (2 * 4 + 3)


async def test_fill_builds_a_database_our_pages_read(tmp_path: Path) -> None:
    done = await asyncio.to_thread(run_compare, "fill", "--db", str(tmp_path / "fill.db"), "--tickets", "40")
    assert done.returncode == 0, done.stderr
    url = f"sqlite+aiosqlite:///{tmp_path / 'fill.db'}"
    engine = create_engine(url)
    async with event_sessions(engine, read_only=True)() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 40
    await engine.dispose()
    with LiveServer(make_settings(url)) as live:
        async with httpx.AsyncClient(base_url=live.url) as client:
            token = (await client.post("/api/auth/token", json={"email": "sup@example.com",
                                                                "password": "bench-pass"})).json()
            headers = {"Authorization": f"Bearer {token['access_token']}"}
            found = await client.get("/api/tickets", params={"q": "refund", "limit": 50}, headers=headers)
            counts = await client.get("/api/tickets/counts", headers=headers)
    assert found.status_code == 200 and found.json()["items"]
    # Only the English quarter of the fill mentions a refund, in its subject or its body.
    assert all(" request #" in t["subject"] for t in found.json()["items"])
    assert counts.json()["unhandled"] == counts.json()["resolved"] == 8  # every fifth ticket each
