"""Web chat: the visitor socket protocol, offline replies by email, and the widget in Chromium."""

import asyncio
import json
from datetime import timedelta
from email.message import Message as MimeMessage
from typing import Any
from uuid import uuid4

import aiosmtplib
import httpx
import pytest
import websockets
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.channels.chat import service as chat
from helpdesk.channels.email import service as mail
from helpdesk.channels.email import tasks as email_tasks
from helpdesk.customers.models import CustomerIdentity
from helpdesk.db import utcnow
from helpdesk.realtime import presence as presences
from helpdesk.tickets.models import Message, Ticket
from tests.support import ROOT
from tests.support.browser import chromium
from tests.support.channels import reply
from tests.support.database import count, fetch
from tests.support.fakes import FakeSMTP
from tests.support.server import SECRET, LiveServer, free_port
from tests.support.staff import Staff
from tests.support.waiting import wait_until


def ws_url(server: LiveServer, token: str | None = None) -> str:
    return server.url.replace("http", "ws") + "/chat/ws" + (f"?token={token}" if token else "")


async def receive(ws: Any, kind: str, wait: float = 15) -> dict[str, Any]:
    """The next frame of ``kind`` (others are skipped)."""
    async with asyncio.timeout(wait):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame  # type: ignore[no-any-return]


async def operator_headers(staff: Staff) -> dict[str, str]:
    return Staff.headers(await staff.create("sato", inboxes=["default"]))


async def test_forged_visitor_token_is_refused(live_server: LiveServer) -> None:
    forged = chat.issue_token("another-secret-key", "visitor-x")
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(ws_url(live_server, forged)):
            pass
    assert refused.value.response.status_code == 403
    assert chat.read_token(SECRET, chat.issue_token(SECRET, "v1")) == "v1"


async def test_visitor_conversation_reconnect_and_typing(
        live_server: LiveServer, staff: Staff, db: AsyncSession) -> None:
    headers = await operator_headers(staff)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        async with websockets.connect(ws_url(live_server)) as ws:
            welcome = await receive(ws, "welcome")
            assert welcome["operators_online"] is False and welcome["email"] is None
            token = welcome["token"]
            await ws.send(json.dumps({"type": "resume", "after": 0}))
            for _ in range(2):  # a resend after a lost acknowledgement changes nothing
                await ws.send(json.dumps(
                    {"type": "message", "text": "サイズ交換できますか", "client_id": "c-1"}))
            mine = await receive(ws, "message")
            assert (mine["direction"], mine["text"]) == ("in", "サイズ交換できますか")
            assert mine["client_id"] == "c-1"
            await ws.send(json.dumps({"type": "message", "text": "", "client_id": "c-2"}))
            assert (await receive(ws, "error"))["detail"].startswith("a message has")
            ticket = (await fetch(db, select(Ticket)))[0]
            assert ticket.channel == "chat" and await count(db, Message) == 1

            told = await client.post(f"/api/chat/tickets/{ticket.id}/typing", headers=headers)
            assert told.json() == {"told": 1}
            assert (await receive(ws, "typing"))["author"] == "sato"
            await reply(client, headers, ticket.id, "はい、交換できます。")
            answer = await receive(ws, "message")
            assert (answer["direction"], answer["author"]) == ("out", "sato")
            assert answer["text"] == "はい、交換できます。"

        await reply(client, headers, ticket.id, "在庫もございます。")  # the visitor is away

        async def sent() -> bool:
            rows = await fetch(db, select(Message).where(Message.delivery_status == "sent"))
            return len(rows) == 2

        await wait_until(sent)
        async with websockets.connect(ws_url(live_server, token)) as ws:
            assert (await receive(ws, "welcome"))["token"] == token
            await ws.send(json.dumps({"type": "resume", "after": answer["id"]}))
            missed = await receive(ws, "message")
            assert (missed["text"], missed["direction"]) == ("在庫もございます。", "out")
        assert await count(db, Ticket) == 1


async def test_nobody_online_visitor_leaves_email_and_the_conversation_continues_by_email(
        live_server: LiveServer, staff: Staff, db: AsyncSession, fake_smtp: FakeSMTP) -> None:
    headers = await operator_headers(staff)
    async with websockets.connect(ws_url(live_server)) as ws:
        assert (await receive(ws, "welcome"))["operators_online"] is False
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        await ws.send(json.dumps({"type": "email", "email": "bad address"}))
        assert (await receive(ws, "error"))["detail"] == "that is not an email address"
        await ws.send(json.dumps({"type": "email", "email": "Visitor@Example.JP"}))
        assert (await receive(ws, "email_saved"))["email"] == "visitor@example.jp"
        await ws.send(json.dumps({"type": "message", "text": "夜分にすみません", "client_id": "n-1"}))
        await receive(ws, "message")
    ticket = (await fetch(db, select(Ticket)))[0]
    identities = {(i.kind, i.value) for i in await fetch(db, select(CustomerIdentity))}
    assert ("email", "visitor@example.jp") in identities
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        await reply(client, headers, ticket.id, "翌営業日にご連絡します。")

        async def mailed() -> bool:
            return bool(fake_smtp.messages)

        await wait_until(mailed)
        _, rcpt, data = fake_smtp.messages[0]
        assert rcpt == ["visitor@example.jp"]
        sent = mail.parse(data)
        assert sent.text == "翌営業日にご連絡します。"

        async def stored_id() -> str | None:
            out = await fetch(db, select(Message).where(Message.direction == "out"))
            return out[0].external_id if out and out[0].delivery_status == "sent" else None

        message_id = await wait_until(stored_id)
        answer = MimeMessage()
        answer["From"] = "visitor@example.jp"
        answer["To"] = "support@shop.example"
        answer["Subject"] = "Re: chat"
        answer["Message-ID"] = "<visitor-answer@example.jp>"
        answer["In-Reply-To"] = f"<{message_id}>"
        answer.set_payload("メールで失礼します。", "utf-8")
        host, port = email_tasks.listen_address(live_server.settings.smtp_listen or "")
        await aiosmtplib.send(answer.as_bytes(), sender="visitor@example.jp",
                              recipients=["support@shop.example"], hostname=host, port=port)

        async def threaded() -> list[Message]:
            return await fetch(db, select(Message).where(Message.external_id == "visitor-answer@example.jp"))

        assert (await wait_until(threaded))[0].ticket_id == ticket.id


# ---- the widget in a real browser ---------------------------------------------------------


async def operator_sees_message_created(server: LiveServer, headers: dict[str, str], db: AsyncSession,
                                        ticket_id: int) -> None:
    """The operator side of the round trip: ``message.created`` arrives on the operator's socket."""
    token = headers["Authorization"].split(" ", 1)[1]
    async with websockets.connect(server.url.replace("http", "ws") + f"/ws?token={token}") as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        async with asyncio.timeout(15):
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("type") == "message.created" and frame["data"]["ticket_id"] == ticket_id:
                    return


async def test_widget_round_trip_in_chromium(live_server: LiveServer, staff: Staff,
                                             db: AsyncSession) -> None:
    headers = await operator_headers(staff)
    operator = staff.made[-1]
    assert operator.id is not None
    async with db.begin():  # an operator is online: the widget does not ask for an address
        await presences.connect(db, connection_id=uuid4().hex, user_id=operator.id, node="test",
                             now=utcnow(), ttl=timedelta(hours=1))
    shop = ShopPage(live_server.url)
    await shop.start()
    try:
        async with chromium() as browser:
            page = await browser.new_page()
            await page.goto(shop.url)
            box = page.locator("#helpdesk-chat")
            await box.locator("textarea").fill("注文番号1001の配送状況を教えてください")
            await box.locator("form.send button").click()
            await box.locator(".msg.in[data-id]").wait_for()
            assert await box.locator("form.away").is_hidden()

            async def ticket() -> list[Ticket]:
                return await fetch(db, select(Ticket))

            found = (await wait_until(ticket))[0]
            async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
                detail = (await client.get(f"/api/tickets/{found.id}", headers=headers)).json()
                assert detail["messages"][0]["body_text"] == "注文番号1001の配送状況を教えてください"
                await operator_sees_message_created(live_server, headers, db, found.id)
                await client.post(f"/api/chat/tickets/{found.id}/typing", headers=headers)
                await box.get_by_text("satoが入力中…").wait_for()
                await reply(client, headers, found.id, "本日発送いたしました。")
            await box.locator(".msg.out", has_text="本日発送いたしました。").wait_for()

            await page.reload()  # the same visitor, the whole conversation again
            await box.locator(".msg.out", has_text="本日発送いたしました。").wait_for()
            assert await box.locator(".msg").count() == 2
    finally:
        await shop.stop()
    assert await count(db, Ticket) == 1


class ShopPage:
    """A shop's page on another origin, embedding the widget with its one script tag."""

    def __init__(self, helpdesk: str) -> None:
        self.helpdesk = helpdesk
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        page = (f'<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>Shop</title></head>'
                f'<body><h1>ショップ</h1><script src="{self.helpdesk}/static/widget.js" '
                f'data-helpdesk="{self.helpdesk}"></script></body></html>').encode()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                         b"Content-Length: " + str(len(page)).encode()
                         + b"\r\nConnection: close\r\n\r\n" + page)
            await writer.drain()
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def test_widget_is_small_and_framework_free() -> None:
    source = (ROOT / "static" / "widget.js").read_text()
    assert len(source.encode()) < 12_000
    assert "import " not in source and "require(" not in source
