"""CSRF protection: a random cookie per browser, and a token derived from it and the session.

The token is an HMAC, by the secret key, of the browser's CSRF cookie and its session cookie: a
token seen under one session (or before signing in) is worth nothing under another.

Every state-changing request that carries the session cookie (or signs in through the login
forms) must echo the token, in the ``X-CSRF-Token`` header (htmx and fetch) or the
``csrf_token`` form field (plain forms), whatever other headers it has: an ``Authorization``
header does not excuse a request the cookie would authenticate. API clients that send only a
bearer token carry no cookie and are not asked.
"""

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "helpdesk_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS", "TRACE"}
# Forms that sign in have no session yet, but must not be forgeable either (login CSRF).
ALWAYS_CHECKED = {"/login", "/login/two-factor"}
# Never authenticated by the cookie (they take a password, a bearer secret or a provider's
# signature) and they set none: a cookie that comes along is ignored.
NEVER_CHECKED = ("/api/auth/token", "/api/inbound", "/webhooks/", "/telephony/", "/chat/")

Refuse = Callable[[Scope, Receive, Send], Awaitable[None]]


def token_of(secret: str, cookie: str, session: str = "") -> str:
    """The token that proves a request came from a page this server rendered for ``cookie`` in
    the session ``session`` (the session cookie's value; empty before signing in)."""
    message = f"csrf:{cookie}:{hashlib.sha256(session.encode()).hexdigest()}"
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def token_for(request: Request) -> str:
    """The token for the page being rendered (the middleware set or read the cookies)."""
    state = request.scope.get("state", {})
    cookie = state.get("csrf_cookie") or request.cookies.get(CSRF_COOKIE)
    if not cookie:
        return ""
    return token_of(request.app.state.settings.secret_key, cookie, state.get("csrf_session", ""))


def _cookies(scope: Scope) -> dict[str, str]:
    raw = b"; ".join(v for k, v in scope["headers"] if k == b"cookie").decode("latin-1")
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed cookie header is the same as no cookies
        return {}
    return {key: morsel.value for key, morsel in jar.items()}


class CSRFMiddleware:
    """Sets the CSRF cookie when missing and refuses unsafe requests without the right token."""

    def __init__(self, app: ASGIApp, *, secret: str, session_cookie: str, refuse: Refuse,
                 secure: bool = False) -> None:
        self.app = app
        self.secret = secret
        self.session_cookie = session_cookie
        self.refuse = refuse
        self.secure = secure

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookies = _cookies(scope)
        cookie = cookies.get(CSRF_COOKIE)
        fresh = None
        if not cookie or len(cookie) > 100:
            cookie = fresh = secrets.token_urlsafe(32)
        session = cookies.get(self.session_cookie, "")
        scope.setdefault("state", {}).update(csrf_cookie=cookie, csrf_session=session)
        headers = dict(scope["headers"])
        if self._must_check(scope, cookies):
            token, receive = await _presented_token(headers, receive)
            expected = token_of(self.secret, cookie, session)
            if fresh is not None or not token or not hmac.compare_digest(token, expected):
                await self.refuse(scope, receive, send)
                return
        await self.app(scope, receive, self._with_cookie(send, fresh))

    def _must_check(self, scope: Scope, cookies: dict[str, str]) -> bool:
        if scope["method"] in SAFE_METHODS or scope["path"].startswith(NEVER_CHECKED):
            return False
        return self.session_cookie in cookies or scope["path"] in ALWAYS_CHECKED

    def _with_cookie(self, send: Send, fresh: str | None) -> Send:
        if fresh is None:
            return send
        attributes = f"{CSRF_COOKIE}={fresh}; Path=/; HttpOnly; SameSite=Lax"
        if self.secure:
            attributes += "; Secure"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"set-cookie", attributes.encode()))
            await send(message)

        return sending


async def _presented_token(headers: dict[bytes, bytes], receive: Receive) -> tuple[str, Receive]:
    """The token from the header, or from a urlencoded body (which is then replayed)."""
    if CSRF_HEADER.encode() in headers:
        return headers[CSRF_HEADER.encode()].decode("latin-1"), receive
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip()
    if content_type != b"application/x-www-form-urlencoded":
        return "", receive
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return "", receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=1000)
    except ValueError:  # too many fields: no token is read from it
        fields = {}
    values = fields.get(CSRF_FIELD, [""])
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return values[0], replay
