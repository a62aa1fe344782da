"""Channel tests: an app configured for every provider, pointed at local fakes of them
(the fixtures live in ``tests.support.channels``)."""

from tests.support.channels import (  # noqa: F401  (fixtures)
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
