"""The migration that keeps each operator-day's medians fills them from the samples folded before."""

import sqlite3
from pathlib import Path

from helpdesk.migrations import run_upgrade


def test_upgrade_ranks_the_samples_already_folded(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    run_upgrade(f"sqlite+aiosqlite:///{path}", "0021")
    samples = [("resolution", "2026-11-02", 11, 1, 100.0), ("resolution", "2026-11-02", 11, 1, 300.0),
               ("resolution", "2026-11-02", 11, 2, 200.0), ("resolution", "2026-11-02", 11, 2, 1200.0),
               ("resolution", "2026-11-03", 11, 1, 50.0),
               ("resolution", "2026-11-02", 0, 1, 999.0)]  # nobody's: not an operator's figure
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO report_sample (metric, day, user_id, inbox_id, ticket_id, seconds) "
                         "VALUES (?, ?, ?, ?, 1, ?)", samples)
    conn.close()
    run_upgrade(f"sqlite+aiosqlite:///{path}")
    with sqlite3.connect(path) as conn:
        spreads = conn.execute("SELECT day, user_id, inbox_id, n, round(p50, 6), round(p90, 6) "
                               "FROM report_spread ORDER BY day, inbox_id").fetchall()
    conn.close()
    # All inboxes: 100, 200, 300, 1200 -> median 250, p90 at rank 2.7: 300 + 0.7 * 900 = 930.
    assert spreads == [("2026-11-02", 11, 0, 4, 250.0, 930.0), ("2026-11-02", 11, 1, 2, 200.0, 280.0),
                       ("2026-11-02", 11, 2, 2, 700.0, 1100.0), ("2026-11-03", 11, 0, 1, 50.0, 50.0),
                       ("2026-11-03", 11, 1, 1, 50.0, 50.0)]
