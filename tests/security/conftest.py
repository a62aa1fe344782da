"""Security tests run against the channel setup: every provider configured, pointed at local fakes,
plus Shopify and CTI; helpers that sign hostile payloads as each provider would."""

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.channels import (  # noqa: F401  (fixtures)
    _clean_fakes,
    channel_settings,
    chttp,
    fake_line,
    fake_line_data,
    fake_meta,
    fake_smtp,
    line_signature,
    live_server,
    media_worker,
    meta_signature,
    operator,
    worker,
)
from tests.support.fakes import FakeLine, FakeLineData, FakeMeta, FakeSMTP
from tests.support.server import LiveServer

SHOPIFY_SECRET = "shopify-secret-for-security-tests"
CTI_TOKEN = "cti-token-for-security-tests"


@pytest.fixture(scope="session")
def channel_server(database_url: str, fake_line: FakeLine, fake_meta: FakeMeta,  # noqa: F811
                   fake_smtp: FakeSMTP, fake_line_data: FakeLineData,  # noqa: F811
                   ) -> Iterator[LiveServer]:
    """Every provider configured, Shopify and CTI too; workers off."""
    settings = channel_settings(database_url, fake_line, fake_meta, fake_smtp, fake_line_data,
                                shopify_webhook_secret=SHOPIFY_SECRET, cti_token=CTI_TOKEN)
    with LiveServer(settings) as live:
        yield live


def signed_raw(provider: str, body: bytes) -> dict[str, str]:
    """Headers that make ``body`` a genuine delivery from ``provider``."""
    if provider == "line":
        return {"X-Line-Signature": line_signature(body), "Content-Type": "application/json"}
    if provider == "meta":
        return {"X-Hub-Signature-256": meta_signature(body), "Content-Type": "application/json"}
    digest = hmac.new(SHOPIFY_SECRET.encode(), body, hashlib.sha256).digest()
    return {"X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
            "X-Shopify-Event-Id": hashlib.sha256(body).hexdigest()[:40],
            "Content-Type": "application/json"}


WEBHOOK_PATHS = {"line": "/webhooks/line", "meta": "/webhooks/meta",
                 "shopify": "/webhooks/shopify/orders", "cti": f"/telephony/cti/{CTI_TOKEN}"}


async def deliver(client: httpx.AsyncClient, provider: str, body: bytes | dict[str, Any]) -> httpx.Response:
    """POST ``body`` (raw bytes, or a dict as JSON) to ``provider``'s webhook, signed."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = ({"Content-Type": "application/json"} if provider == "cti"
               else signed_raw(provider, raw))
    return await client.post(WEBHOOK_PATHS[provider], content=raw, headers=headers)


async def login_form(client: httpx.AsyncClient) -> dict[str, str]:
    """The hidden fields of the sign-in form (its CSRF token), the cookies kept by ``client``."""
    page = await client.get("/login")
    return dict(re.findall(r'name="(csrf_token)" value="([^"]+)"', page.text))
