"""Customer text is stored exactly as received: one string through every inbound path.

Circled digits, ㈱, the IBM kanji 髙 and 﨑, full-width brackets and half-width kana are what
NFKC rewrites (``1(株)髙﨑()!カナ``). Each path must give the string back unchanged, and search
must still find it by its folded forms.
"""

import asyncio
import base64
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import websockets
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role
from tests.customers.test_shopify import deliver, order_payload
from tests.support.channels import (  # noqa: F401 - fixtures used by name
    _clean_fakes,
    channel_settings,
    fake_line,
    fake_line_data,
    fake_meta,
    fake_smtp,
    line_message,
    post_line,
    post_meta,
)
from tests.support.fakes import FakeLine, FakeLineData, FakeMeta, FakeSMTP
from tests.support.inbound import INBOUND_HEADERS
from tests.support.server import LiveServer
from tests.support.staff import Staff

TEXT = "①㈱髙﨑（）！ｶﾅ"
FOLDED_QUERIES = ("1", "(株)", "カナ")
SHOPIFY_SECRET = "shpss_test_webhook_secret"
TWILIO_SID = "AC" + "0" * 32
TWILIO_TOKEN = "twilio-auth-token-for-tests"
PUBLIC_URL = "https://helpdesk.example.jp"


@pytest.fixture(scope="module")
def every_channel(database_url: str, fake_line: FakeLine, fake_meta: FakeMeta,  # noqa: F811
                  fake_smtp: FakeSMTP, fake_line_data: FakeLineData) -> Iterator[LiveServer]:  # noqa: F811
    """Email, LINE, Meta, chat, the API, Twilio SMS and Shopify all configured."""
    settings = channel_settings(database_url, fake_line, fake_meta, fake_smtp, fake_line_data,
                                shopify_webhook_secret=SHOPIFY_SECRET, public_url=PUBLIC_URL,
                                twilio_account_sid=TWILIO_SID, twilio_auth_token=TWILIO_TOKEN)
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
async def client(every_channel: LiveServer, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=every_channel.url, timeout=30) as http:
        yield http


def _mail_utf8() -> bytes:
    words = base64.b64encode(TEXT.encode()).decode()
    return (f"From: =?UTF-8?B?{words}?= <utf8@example.jp>\r\nTo: support@shop.example\r\n"
            f"Subject: =?UTF-8?B?{words}?=\r\nMessage-ID: <exact-1@example.jp>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n"
            f"Content-Transfer-Encoding: base64\r\n\r\n{words}\r\n").encode()


def _mail_raw_cp932() -> bytes:
    """An old mobile mailer: Shift_JIS bytes straight in the headers and the body."""
    raw = TEXT.encode("cp932")
    return (b"From: " + raw + b" <sjis@example.ne.jp>\r\nTo: support@shop.example\r\nSubject: " + raw
            + b"\r\nMessage-ID: <exact-2@example.ne.jp>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=Shift_JIS\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            + raw + b"\r\n")


def _whatsapp() -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "81312345678", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": TEXT}, "wa_id": "819055556666"}],
            "messages": [{"from": "819055556666", "id": "wamid.EXACT", "timestamp": "1714525200",
                          "type": "text", "text": {"body": TEXT}}]}}]}]}


async def _sms(client: httpx.AsyncClient) -> httpx.Response:
    params = [("MessageSid", "SMEXACT"), ("AccountSid", TWILIO_SID), ("From", "+819077778888"),
              ("To", "+815012345678"), ("Body", TEXT), ("NumMedia", "0")]
    path = "/telephony/twilio/sms"
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + path,
                                                                 ImmutableMultiDict(params))
    return await client.post(path, content=urlencode(params).encode(), headers={
        "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature})


async def _chat(server: LiveServer) -> None:
    async with websockets.connect(server.url.replace("http", "ws") + "/chat/ws") as ws, \
            asyncio.timeout(15):
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        await ws.send(json.dumps({"type": "message", "text": TEXT, "client_id": "exact"}))
        while (frame := json.loads(await ws.recv()))["type"] != "message":
            pass
        assert frame["text"] == TEXT


def _orders_csv() -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["注文番号", "注文日", "お名前", "メールアドレス", "商品名", "商品コード", "商品単価",
                     "個数", "対応状況(名称)"])
    writer.writerow(["E-1", "2026/11/01 10:00", TEXT, "csv@example.jp", TEXT, "SKU-1", "1200", "1", TEXT])
    return out.getvalue().encode("cp932")


async def _ticket_ids(client: httpx.AsyncClient, headers: dict[str, str]) -> list[int]:
    return [t["id"] for t in (await client.get("/api/tickets", params={"limit": 200},
                                               headers=headers)).json()["items"]]


async def test_one_string_survives_every_inbound_path(
        client: httpx.AsyncClient, every_channel: LiveServer, fake_line: FakeLine,  # noqa: F811
        db: AsyncSession, staff: Staff) -> None:
    boss = await staff.create("boss", Role.admin)
    headers = Staff.headers(boss)
    fake_line.names["U" + "e" * 32] = TEXT

    for raw in (_mail_utf8(), _mail_raw_cp932()):
        mailed = await client.post("/webhooks/email", content=raw,
                                   headers={**INBOUND_HEADERS, "Content-Type": "message/rfc822"})
        assert mailed.status_code == 201, mailed.text
    line = await post_line(client, line_message(TEXT, event_id="01HZX00000000000000000EXCT",
                                                user_id="U" + "e" * 32, message_id="900000000000000001"))
    assert line.status_code == 200, line.text
    assert (await post_meta(client, _whatsapp())).status_code == 200
    await _chat(every_channel)
    api = await client.post("/api/inbound", headers={**INBOUND_HEADERS, "Idempotency-Key": "exact"},
                            json={"channel": "api", "external_id": "exact", "subject": TEXT, "body": TEXT,
                                  "from": {"name": TEXT, "email": "api@example.jp"}})
    assert api.status_code == 201, api.text
    assert (await _sms(client)).status_code == 200

    # every ticket: subject (where the channel has one), body and the customer's name, exact
    ids = await _ticket_ids(client, headers)
    assert len(ids) == 7
    tickets = [(await client.get(f"/api/tickets/{i}", headers=headers)).json() for i in ids]
    by_channel: dict[str, list[dict[str, Any]]] = {}
    for ticket in tickets:
        assert ticket["messages"][0]["body_text"] == TEXT, ticket
        by_channel.setdefault(ticket["channel"], []).append(ticket)
    assert sorted(by_channel) == ["api", "chat", "email", "line", "sms", "whatsapp"]
    for ticket in by_channel["email"] + by_channel["api"]:
        assert ticket["subject"] == TEXT
    named = by_channel["email"] + by_channel["api"] + by_channel["whatsapp"] + by_channel["line"]
    for ticket in named:
        assert ticket["customer"]["name"] == TEXT, ticket["channel"]

    # orders: a CP932 cart export and a Shopify webhook keep names, items and statuses as written
    imported = await client.post("/api/orders/import", headers=headers,
                                 files={"file": ("orders.csv", _orders_csv(), "text/csv")})
    assert imported.status_code == 200 and imported.json()["imported"] == 1, imported.text
    shopify = order_payload(email="shopify@example.jp", customer={
        "id": 1, "email": "shopify@example.jp", "last_name": TEXT, "first_name": None},
        billing_address={"last_name": TEXT, "country_code": "JP"},
        line_items=[{"sku": "S-1", "title": TEXT, "name": TEXT, "quantity": 1, "price": "100.00"}])
    assert (await deliver(client, shopify, event_id="evt-exact")).status_code == 200
    buyers = []
    for email in ("csv@example.jp", "shopify@example.jp"):
        found = (await client.get("/api/customers", params={"email": email}, headers=headers)).json()
        profile = (await client.get(f"/api/customers/{found['items'][0]['id']}", headers=headers)).json()
        assert profile["name"] == TEXT and profile["orders"][0]["items"][0]["name"] == TEXT, profile
        buyers.append(profile["id"])
    csv_order = (await client.get(f"/api/customers/{buyers[0]}", headers=headers)).json()["orders"][0]
    assert csv_order["status"] == TEXT

    # a reply template's name, through the admin page
    client.cookies.set(SESSION_COOKIE, Staff.cookie(boss))
    page = await client.get("/admin/templates")
    for name, value in page.cookies.items():  # Secure cookies (PUBLIC_URL is https) over loopback http
        client.cookies.set(name, value)
    token = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert token
    saved = await client.post("/admin/templates", data={"name": TEXT, "body": TEXT},
                              headers={"X-CSRF-Token": token.group(1), "HX-Request": "true"})
    assert saved.status_code == 200, saved.text
    assert f'value="{TEXT}"' in (await client.get("/admin/templates")).text
    client.cookies.clear()

    # search finds all of it by the folded forms
    customer_ids = {t["customer"]["id"] for t in named} | set(buyers)
    for query in FOLDED_QUERIES:
        hits = (await client.get("/api/tickets", params={"q": query, "limit": 200},
                                 headers=headers)).json()["items"]
        assert set(ids) <= {t["id"] for t in hits}, query
        people = (await client.get("/api/customers", params={"q": query, "limit": 200},
                                   headers=headers)).json()["items"]
        assert customer_ids <= {c["id"] for c in people}, query
    await db.rollback()
