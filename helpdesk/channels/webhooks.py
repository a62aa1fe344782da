"""What every provider webhook shares: signature checks on the raw body, a name cache, the HTTP client."""

import base64
import hashlib
import hmac
import json
import time
from typing import Annotated, Any

import httpx
from fastapi import Depends, Request

from helpdesk.errors import BadInput


def hmac_sha256(secret: str, body: bytes) -> bytes:
    """HMAC-SHA256 of ``body`` keyed with ``secret``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).digest()


def valid_base64_signature(secret: str, body: bytes, signature: str | None) -> bool:
    """LINE's scheme: base64 of the HMAC, compared in constant time."""
    expected = base64.b64encode(hmac_sha256(secret, body)).decode()
    return bool(signature) and hmac.compare_digest(expected, (signature or "").strip())


def valid_hex_signature(secret: str, body: bytes, signature: str | None, prefix: str) -> bool:
    """Meta's scheme: ``sha256=`` and the hex HMAC, compared in constant time."""
    expected = prefix + hmac_sha256(secret, body).hex()
    return bool(signature) and hmac.compare_digest(expected, (signature or "").strip().lower())


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; 422 otherwise."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise BadInput("the body must be a JSON object")
    return payload


class TTLCache:
    """A small bounded cache of display names, so retries and bursts skip profile look-ups."""

    def __init__(self, ttl: float = 600.0, size: int = 10_000) -> None:
        self.ttl = ttl
        self.size = size
        self._items: dict[str, tuple[float, str | None]] = {}

    def get(self, key: str) -> tuple[bool, str | None]:
        """(found, value)."""
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: str, value: str | None) -> None:
        """Remember ``value``; the oldest entry goes when full."""
        if len(self._items) >= self.size:
            self._items.pop(next(iter(self._items)))
        self._items[key] = (time.monotonic() + self.ttl, value)


async def http_client(request: Request) -> httpx.AsyncClient:
    """The app's shared HTTP client for provider APIs (built in the lifespan)."""
    client: httpx.AsyncClient = request.app.state.http
    return client


HttpDep = Annotated[httpx.AsyncClient, Depends(http_client)]
