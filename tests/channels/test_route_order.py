"""Messages coming in are matched before the pages and the staff API: routes are tried in order."""

from typing import Any

from helpdesk.app import create_app
from tests.support.server import make_settings


def _paths(route: Any) -> list[str]:
    """The paths under ``route`` in matching order (an included router holds several)."""
    router = getattr(route, "original_router", None)
    if router is not None:
        return [path for inner in router.routes for path in _paths(inner)]
    return [route.path] if hasattr(route, "path") else []


def test_inbound_paths_come_before_pages_and_the_staff_api() -> None:
    app = create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    paths = [path for route in app.routes for path in _paths(route)]
    inbound = [paths.index(path) for path in ("/api/inbound", "/webhooks/email")]
    staff = [paths.index(path) for path in ("/api/tickets", "/login")]
    assert max(inbound) < min(staff), paths[:max(inbound) + 1]
