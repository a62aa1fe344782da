"""One error base class and the handlers that render it (JSON for the API)."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


class HelpdeskError(Exception):
    """An expected failure with the HTTP status it maps to and extra JSON fields."""

    status_code = 400

    def __init__(self, message: str, status_code: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        self.extra = extra


class NotFound(HelpdeskError):
    status_code = 404


class Conflict(HelpdeskError):
    status_code = 409


class Forbidden(HelpdeskError):
    status_code = 403


class Unauthorized(HelpdeskError):
    status_code = 401


class BadInput(HelpdeskError):
    status_code = 422


def _json(status: int, detail: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


async def _helpdesk_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HelpdeskError)
    return _json(exc.status_code, exc.message, **exc.extra)


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"] if part != "body")
    return _json(422, f"{where}: {first['msg']}" if where else str(first["msg"]), errors=errors)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return _json(exc.status_code, str(exc.detail))


def install_error_handlers(app: FastAPI) -> None:
    """Render every expected failure as ``{"detail": str, ...}``."""
    app.add_exception_handler(HelpdeskError, _helpdesk_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
