"""No production module grows past what a reader takes in at once: split it by responsibility."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("helpdesk", "telephony")
MAX_LINES = 400


def production_modules() -> list[Path]:
    # Migrations are a record of the schema's history, written once and never read as a whole.
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
                  if "migrations" not in path.relative_to(ROOT).parts)


def line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_the_packages_are_found():
    modules = production_modules()
    assert ROOT / "helpdesk" / "app.py" in modules
    assert ROOT / "telephony" / "twilio.py" in modules


def test_no_production_module_is_over_the_limit():
    too_long = {str(path.relative_to(ROOT)): count for path in production_modules()
                if (count := line_count(path)) > MAX_LINES}
    assert too_long == {}, f"split these by responsibility (at most {MAX_LINES} lines): {too_long}"
