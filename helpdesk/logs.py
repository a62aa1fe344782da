"""Keeping secrets out of logs: tokens travel in some URLs (``/ws?token=``, the CTI token in the
path of ``/telephony/cti/{token}``, a provider's ``access_token=`` or ``hub.verify_token=``),
and access logs would keep them. Every such value is replaced before a line is written."""

import logging
import re

# A query parameter whose name says it carries a secret: token, key, secret, password,
# signature or auth anywhere in the name (access_token, hub.verify_token, api_key, sig…).
_SECRET_PARAMS = re.compile(
    r"((?:^|[?&;])[^=&;?\s]*(?:token|key|secret|passw|signature|sig|auth)[^=&;?\s]*=)[^&;\s]*",
    re.IGNORECASE)
# Paths with a secret segment: everything after the prefix up to the query string.
_SECRET_PATHS = re.compile(r"(/telephony/cti/)[^?\s]+", re.IGNORECASE)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """``text`` with secrets in paths and token-like query parameters replaced."""
    text = _SECRET_PATHS.sub(rf"\1{REDACTED}", text)
    return _SECRET_PARAMS.sub(rf"\1{REDACTED}", text)


class RedactTokens(logging.Filter):
    """Rewrites the request line of an access log record (or a client's URL) before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else _redact_url(a)
                                for a in record.args)
        elif isinstance(record.msg, str) and not record.args:
            record.msg = redact(record.msg)
        return True


def _redact_url(value: object) -> object:
    # httpx logs its request URLs as URL objects: a provider's token may be in the query string.
    if type(value).__name__ == "URL" and type(value).__module__.startswith("httpx"):
        return redact(str(value))
    return value


REDACT_TOKENS = RedactTokens()
LOGGERS = ("uvicorn.access", "uvicorn.error", "httpx")


def install() -> None:
    """Redact secrets in uvicorn's access and error logs and in httpx's request log (adding the
    same filter twice is a no-op)."""
    for name in LOGGERS:
        logging.getLogger(name).addFilter(REDACT_TOKENS)
