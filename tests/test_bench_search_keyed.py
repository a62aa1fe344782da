"""``bench/search_keyed.py``: both designs give the same pages, before and after tickets move."""

from pathlib import Path

import pytest

from bench import search_keyed
from bench.search import QUERIES


def test_both_designs_give_the_same_pages_before_and_after_activity(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = search_keyed.open_db(str(tmp_path / "keyed.db"))
    search_keyed.fill(db, 3000)
    search_keyed.measure(db, rounds=1)  # asserts the three plans' pages are equal
    search_keyed.activity_cost(db, 200)  # moves 200 tickets to the top, re-keying them
    search_keyed.measure(db, rounds=1)
    printed = capsys.readouterr().out.splitlines()
    rows = [line for line in printed if line.endswith(" rows)")]
    assert len(rows) == 2 * 2 * len([q for q in QUERIES if q])
    assert any(line.startswith("返品 | - |") and line.endswith("(51 rows)") for line in rows)
    moved = search_keyed.keyed_page(db, "返品", None)
    assert moved == search_keyed.walk_page(db, "返品", None)
    assert any("re-keying its document too" in line for line in printed)
