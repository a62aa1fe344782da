"""Keeping secrets out of logs: sockets may sign in with ``?token=``, which access logs would keep."""

import logging
import re

_SECRET_PARAMS = re.compile(r"((?:^|[?&])(?:token|access_token)=)[^&\s]+")


def redact(text: str) -> str:
    """``text`` with the values of token-like query parameters replaced."""
    return _SECRET_PARAMS.sub(r"\1[redacted]", text)


class RedactTokens(logging.Filter):
    """Rewrites the request line of uvicorn's access log before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


REDACT_TOKENS = RedactTokens()


def install() -> None:
    """Redact tokens in uvicorn's access log (adding the same filter twice is a no-op)."""
    logging.getLogger("uvicorn.access").addFilter(REDACT_TOKENS)
