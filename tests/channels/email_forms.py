"""Helpers for tests of the composer's email fields: a received mail with a Cc, and an operator
posting the ticket page's forms as htmx does (session cookie and CSRF header)."""

import re

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import User
from helpdesk.tickets.models import Ticket
from tests.support.database import fetch
from tests.support.inbound import INBOUND_HEADERS
from tests.support.server import LiveServer
from tests.support.staff import Staff


def inbound_mail(message_id: str = "cc-1@example.jp") -> bytes:
    return ("From: 山田 <yamada@example.jp>\r\n"
            "To: support@shop.example\r\n"
            "Cc: keiri@example.jp, Support <support@shop.example>\r\n"
            "Subject: =?UTF-8?B?6KaL56mN44KK44Gu44GK6aGY44GE?=\r\n"
            f"Message-ID: <{message_id}>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "見積書をお願いします。\r\n").encode()


class Browserless:
    """A signed-in operator posting the ticket page's forms."""

    def __init__(self, server: LiveServer, user: User) -> None:
        self.client = httpx.AsyncClient(base_url=server.url, timeout=30,
                                        cookies={SESSION_COOKIE: Staff.cookie(user)})
        self.csrf = ""

    async def page(self, path: str) -> str:
        response = await self.client.get(path)
        assert response.status_code == 200, response.text
        found = re.search(r'<meta name="csrf-token" content="([^"]+)"', response.text)
        assert found
        self.csrf = found.group(1)
        return response.text

    async def post(self, path: str, data: dict[str, str],
                   files: list[tuple[str, tuple[str, bytes, str]]] | None = None) -> httpx.Response:
        return await self.client.post(path, data=data, files=files, headers={
            "X-CSRF-Token": self.csrf, "HX-Request": "true"})

    async def __aenter__(self) -> "Browserless":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()


async def email_ticket(chttp: httpx.AsyncClient, db: AsyncSession) -> Ticket:
    response = await chttp.post("/webhooks/email", content=inbound_mail(),
                                headers={**INBOUND_HEADERS, "Content-Type": "message/rfc822"})
    assert response.status_code == 201, response.text
    ticket: Ticket = (await fetch(db, select(Ticket)))[0]
    return ticket


async def compose(op: Browserless, ticket: Ticket, **fields: str) -> tuple[str, dict[str, str]]:
    page = await op.page(f"/tickets/{ticket.id}")
    version = re.search(r'name="composer_version" id="composer-version" value="(\d+)"', page)
    assert version
    return page, {"composer_version": version.group(1), **fields}
