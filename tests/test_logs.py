"""Bearer tokens sent in a socket URL never reach the access log."""

import logging

from helpdesk import logs


def test_tokens_in_request_lines_are_redacted() -> None:
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                               '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/ws?token=abc.def-123&after=7", "1.1", 101),
                               None)
    assert logs.REDACT_TOKENS.filter(record)
    assert record.getMessage() == '127.0.0.1:5000 - "GET /ws?token=[redacted]&after=7 HTTP/1.1" 101'
    assert logs.redact("/ws?after=1&access_token=xyz") == "/ws?after=1&access_token=[redacted]"
    assert logs.redact("/api/tickets?q=token") == "/api/tickets?q=token"


def test_the_app_installs_the_filter() -> None:
    from helpdesk.app import create_app
    from tests.support.server import make_settings

    create_app(make_settings("sqlite+aiosqlite:///:memory:"))
    assert logs.REDACT_TOKENS in logging.getLogger("uvicorn.access").filters
