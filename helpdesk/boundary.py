"""The input boundary: what no text from outside may carry into the core.

PostgreSQL refuses NUL in text and both databases' drivers refuse lone surrogates, so either
would surface as a 500 deep inside a transaction; a line break in a value that ends up in a mail
header would let the sender write headers of their own. These checks run once, where input
enters, and everything behind them may rely on them.
"""

import json
import logging
import math
import re
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import Response
from sqlalchemy.exc import StatementError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk import errors

log = logging.getLogger(__name__)

LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# NUL and UTF-16 halves without their other half (JSON's "\ud800" decodes to one).
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def one_line(value: str) -> str:
    """A header-bound value (a subject, a name) with every line break folded to one space."""
    return LINE_BREAKS.sub(" ", value)


def one_line_or_none(value: str | None) -> str | None:
    """``one_line`` for an optional value."""
    return None if value is None else one_line(value)


def unstorable(value: str) -> bool:
    """Whether ``value`` holds NUL or a lone surrogate, which no database here can store."""
    return _UNSTORABLE.search(value) is not None


def epoch_time(value: object, *, per_second: int = 1) -> datetime | None:
    """A provider's epoch timestamp (seconds, or ms with ``per_second=1000``) as a UTC datetime.

    None when absent or not a positive number, as before; 422 when no calendar holds it.
    """
    try:
        seconds = float(value) / per_second  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not seconds > 0:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        raise errors.BadInput("timestamp: out of range") from None


def storable(value: str) -> str:
    """``value`` without NUL, lone surrogates replaced: for text that cannot be refused (mail)."""
    if not unstorable(value):
        return value
    return _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", value)


# ---- JSON and form bodies, query strings ----------------------------------------------------

MAX_JSON_DEPTH = 64  # no provider nests past a dozen levels
MAX_INTEGER = 2**63 - 1  # the largest BIGINT; nothing larger can be an id, count or timestamp
# Only bodies showing one of these can fail the walk below, so most are never parsed twice.
_MAYBE_HOSTILE = re.compile(rb"\\u|\x00|\xed[\xa0-\xbf]|\d{19}|\d[eE][+-]?\d{3}|Infinity|NaN")


def json_problem(body: bytes) -> str | None:
    """Why a JSON body is refused: too deep, a number out of range, or unstorable text.

    None when it is fine, and also when it is not JSON at all: the route reports that itself.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH and not _MAYBE_HOSTILE.search(body):
        return None
    try:
        value = json.loads(body)
    except RecursionError:
        return "JSON nested too deeply"
    except ValueError:
        return None
    return value_problem(value)


def value_problem(value: object) -> str | None:
    """``json_problem`` for a value already parsed (a socket frame)."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return "JSON nested too deeply"
        if isinstance(item, str):
            if unstorable(item):
                return "text may not contain NUL or lone surrogates"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not -MAX_INTEGER <= item <= MAX_INTEGER:
                return "a number is out of range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "a number is out of range"
        elif isinstance(item, dict):
            stack.extend((part, depth + 1) for pair in item.items() for part in pair)
        elif isinstance(item, list):
            stack.extend((part, depth + 1) for part in item)
    return None


def urlencoded_problem(data: bytes) -> str | None:
    """Why a query string or form body is refused: a NUL, encoded or not."""
    if b"%00" in data or b"\x00" in data:
        return "text may not contain NUL"
    return None


class InputBoundaryMiddleware:
    """422 for paths, query strings, JSON and form bodies carrying what nothing should store.

    JSON and form bodies are read whole here (the body limit outside this bounds them) and
    handed on unchanged, so signature checks still see the exact bytes. Multipart uploads and raw
    mail are not inspected: files may hold any byte, and mail text is cleaned at ingest.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = ("the path may not contain NUL" if "\x00" in scope["path"]
                   else urlencoded_problem(scope.get("query_string", b"")))
        content_type = dict(scope["headers"]).get(b"content-type", b"").lower()
        inspect = problem is None and not content_type.startswith((b"multipart/", b"message/"))
        if not inspect:
            await (_refuse(send, problem) if problem else self.app(scope, receive, send))
            return
        body, complete = await _read_all(receive)
        if not complete:
            return  # the client went away
        problem = (urlencoded_problem(body) if content_type.startswith(b"application/x-www-form")
                   else json_problem(body))
        if problem:
            await _refuse(send, problem)
            return
        await self.app(scope, _replay(body, receive), send)


async def _read_all(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", False
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()  # after the body: a disconnect, when it comes
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _refuse(send: Send, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": 422,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


# ---- the last line: what a driver refuses is bad input, not a server error --------------------

# PostgreSQL: 22021 character_not_in_repertoire (NUL), 22P05 untranslatable_character,
# 22003 numeric_value_out_of_range; asyncpg's "invalid input for query argument" is a DataError.
_REFUSED_SQLSTATES = {"22021", "22P05", "22003"}


def refused_by_driver(exc: BaseException) -> bool:
    """Whether a database error was caused by the values sent rather than by the server.

    The driver's own error is wrapped once or twice (SQLAlchemy's, then asyncpg's), so the chain
    of causes is followed to the value it could not encode or store.
    """
    seen: BaseException | None = exc
    for _ in range(6):
        if seen is None:
            return False
        if isinstance(seen, UnicodeEncodeError | OverflowError):
            return True
        state = getattr(seen, "sqlstate", None) or getattr(seen, "pgcode", None)
        if state in _REFUSED_SQLSTATES or "invalid input for query argument" in str(seen):
            return True
        seen = (seen.orig if isinstance(seen, StatementError) and seen.orig is not None
                else seen.__cause__ or seen.__context__)
    return False


async def _driver_refused(request: Request, exc: Exception) -> Response:
    if not refused_by_driver(exc):
        raise exc
    log.warning("input refused by the database driver on %s: %s", request.url.path, exc)
    return errors.error_response(request, 422, "the request holds a value that cannot be stored")


def install(app: FastAPI) -> None:
    """Refuse hostile input at the edge, and turn what slips through to the driver into 422."""
    app.add_middleware(InputBoundaryMiddleware)
    for kind in (StatementError, UnicodeEncodeError, OverflowError):
        app.add_exception_handler(kind, _driver_refused)
