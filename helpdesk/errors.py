"""One error base class and the handlers that render it: JSON for the API, and for pages a toast
(htmx requests) or an error page (the renderer the web layer installs as ``app.state.html_error``).
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

# Machine-facing paths always answer JSON, whatever the client accepts.
JSON_PREFIXES = ("/api/", "/webhooks/", "/telephony/", "/chat/", "/ws")
HtmlError = Callable[[Request, int, str], Response]


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


def wants_html(request: Request) -> bool:
    """Whether the failure should be shown to a person (a page or htmx) rather than as JSON."""
    if request.url.path.startswith(JSON_PREFIXES) or request.url.path == "/api":
        return False
    if request.headers.get("hx-request") == "true":
        return True
    return "text/html" in request.headers.get("accept", "")


def error_response(request: Request, status: int, detail: str, **extra: Any) -> Response:
    """The failure as JSON, or as the page layer renders it for people."""
    html: HtmlError | None = getattr(request.app.state, "html_error", None)
    if html is not None and wants_html(request):
        return html(request, status, detail)
    return _json(status, detail, **extra)


async def _helpdesk_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HelpdeskError)
    return error_response(request, exc.status_code, exc.message, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in exc.errors()
    ]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"] if part != "body")
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    return error_response(request, 422, detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(request, exc.status_code, str(exc.detail))


# What a 422 really looks like (see ``_validation_error``), documented in place of FastAPI's own.
VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError", "type": "object", "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "title": "Detail"},
        "errors": {"type": "array", "title": "Errors", "items": {
            "type": "object", "required": ["loc", "msg"],
            "properties": {"loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                                      {"type": "integer"}]}},
                           "msg": {"type": "string"}, "type": {"type": ["string", "null"]}}}},
    },
}


def _document_errors(app: FastAPI) -> None:
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    """Render every expected failure as ``{"detail": str, ...}``, and document 422s so."""
    _document_errors(app)
    app.add_exception_handler(HelpdeskError, _helpdesk_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
