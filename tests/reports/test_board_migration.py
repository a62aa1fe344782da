"""Migration 0026 starts the board's kept figures from the tickets as they stand, and goes back."""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command

from helpdesk.migrations import alembic_config
from tests.test_migrations import _run, scratch_database


@pytest.fixture
def scratch(database_url: str, tmp_path: Path) -> Iterator[str]:
    yield from scratch_database(database_url, tmp_path)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_0026_fills_today_s_pace_and_counts_per_channel(scratch: str) -> None:
    config = alembic_config(scratch)
    command.upgrade(config, "0024")
    now = datetime.now(UTC).replace(microsecond=250_000)
    created, answered, resolved = now - timedelta(hours=2), now - timedelta(hours=1), now
    old = now - timedelta(days=10)
    asyncio.run(_run(
        scratch,
        "INSERT INTO \"user\" (id, email, name, role, language, timezone, password_hash, is_active, "
        "failed_logins, created_at) VALUES (7, 'sato@example.com', 'sato', 'operator', 'ja', "
        "'Asia/Tokyo', 'x', true, 0, CURRENT_TIMESTAMP)",
        "INSERT INTO ticket (number, subject, status, priority, channel, inbox_id, assignee_id, token, "
        "version, created_at, updated_at, first_response_at, resolved_at) VALUES "
        f"(1001, 'a', 'resolved', 'normal', 'email', 1, 7, 't1', 1, '{stamp(created)}', "
        f"'{stamp(resolved)}', '{stamp(answered)}', '{stamp(resolved)}'), "
        f"(1002, 'b', 'in_progress', 'normal', 'line', 1, 7, 't2', 1, '{stamp(created)}', "
        f"'{stamp(answered)}', '{stamp(answered)}', NULL), "
        f"(1003, 'c', 'resolved', 'normal', 'email', 1, 7, 't3', 1, '{stamp(old)}', '{stamp(old)}', "
        f"'{stamp(old)}', '{stamp(old)}'), "
        f"(1004, 'd', 'unhandled', 'normal', 'email', 1, NULL, 't4', 1, '{stamp(now)}', '{stamp(now)}', "
        "NULL, NULL)"))
    command.upgrade(config, "0026")
    pace = asyncio.run(_run(scratch, "SELECT assignee_id, SUM(resolved), SUM(resolution_us), SUM(responded), "
                                     "SUM(response_us) FROM ticket_pace GROUP BY assignee_id"))
    hour = 3600 * 10**6
    assert [tuple(int(v) for v in row) for row in pace] == [(7, 1, 2 * hour, 2, 2 * hour)]
    assert asyncio.run(_run(scratch, "SELECT assignee_id, status, channel, n FROM ticket_count "
                                     "ORDER BY assignee_id, status, channel")) == [
        (0, "unhandled", "email", 1), (7, "in_progress", "line", 1), (7, "resolved", "email", 2)]
    command.downgrade(config, "0024")
    assert asyncio.run(_run(scratch, "SELECT assignee_id, status, n FROM ticket_count "
                                     "ORDER BY assignee_id, status")) == [
        (0, "unhandled", 1), (7, "in_progress", 1), (7, "resolved", 2)]
