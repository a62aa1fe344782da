"""Security tests run against the channel setup: every provider configured, pointed at local fakes."""

from tests.channels.conftest import (  # noqa: F401  (fixtures)
    _clean_fakes,
    channel_server,
    chttp,
    fake_line,
    fake_line_data,
    fake_meta,
    fake_smtp,
    live_server,
    media_worker,
    operator,
    worker,
)
