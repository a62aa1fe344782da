"""Findings 9 and 10: every page or card that shows a profile leaves a ``customer.view`` row,
and no secret in a URL (the CTI token in the path, ``?token=``, ``key=``, ``secret=``) reaches
the access log."""

import logging
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from websockets.asyncio.client import connect

from helpdesk import logs
from helpdesk.app import SERVER_OPTIONS, create_app
from helpdesk.audit.models import AuditLog
from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role
from helpdesk.tickets.models import Ticket
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.server import free_port, make_settings, serving
from tests.support.staff import Staff
from tests.support.waiting import wait_until

CTI_TOKEN = "cti-Secret-0123456789"


@pytest.fixture
def peek(engine: AsyncEngine) -> Peek:
    """Reads what the server committed."""
    return Peek(engine)


async def _views(peek: Peek) -> list[AuditLog]:
    return await peek.scalars(select(AuditLog).where(AuditLog.action == "customer.view")
                              .order_by(AuditLog.id))


async def test_the_phone_card_and_the_ticket_page_audit_the_profile_they_show(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "a1", phone="090-1234-5678")
    customer_id = (await peek.get(Ticket, result.ticket_id)).customer_id
    http.cookies.set(SESSION_COOKIE, Staff.cookie(sato))
    card = await http.get("/phone/card", params={"customer_id": customer_id})
    assert card.status_code == 200
    by_number = await http.get("/phone/card", params={"number": "09012345678"})
    assert by_number.status_code == 200
    unknown = await http.get("/phone/card", params={"number": "0311112222"})
    assert unknown.status_code == 200
    ticket = await http.get(f"/tickets/{result.ticket_id}")
    assert ticket.status_code == 200
    rows = await _views(peek)
    assert [(r.actor_id, r.target_id, r.detail.get("via")) for r in rows] == [
        (sato.id, str(customer_id), "phone_card"),
        (sato.id, str(customer_id), "phone_card"),
        (sato.id, str(customer_id), "ticket"),
    ]  # an unknown number shows no profile and records none


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def logged_server(database_url: str) -> Iterator[tuple[str, Captured]]:
    """A server writing its access log (as ``helpdesk serve`` does), captured line by line."""
    settings = make_settings(database_url, cti_token=CTI_TOKEN)
    port = free_port()
    captured = Captured()
    with serving(create_app(settings), port, log_level="info", access_log=True, lifespan="on",
                 **SERVER_OPTIONS):
        # Requests are logged on uvicorn.access; socket handshakes on uvicorn.error.
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).addHandler(captured)
        try:
            yield f"http://127.0.0.1:{port}", captured
        finally:
            for name in ("uvicorn.access", "uvicorn.error"):
                logging.getLogger(name).removeHandler(captured)

async def test_access_log_lines_carry_no_secrets(
        logged_server: tuple[str, Captured], staff: Staff) -> None:
    url, captured = logged_server
    user = await staff.create("sato", Role.operator)
    token = Staff.token(user)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        await client.post(f"/telephony/cti/{CTI_TOKEN}", data={"event": "hangup", "callId": "x"})
        await client.post(f"/telephony/cti/{CTI_TOKEN}x/extra", data={"event": "newCall"})
        await client.get("/api/tickets", params={"access_token": "AT-secret", "api_key": "K-secret",
                                                 "client_secret": "S-secret", "q": "token"})
        await client.get("/webhooks/meta", params={"hub.verify_token": "V-secret",
                                                   "hub.mode": "subscribe"})
    async with connect(f"{url.replace('http', 'ws')}/ws?token={token}&after=0", proxy=None) as ws:
        await ws.send('{"type": "ping"}')
        await ws.recv()
    await wait_until(lambda: any("/ws?token=" in line for line in captured.lines))
    text = "\n".join(captured.lines)
    assert "/telephony/cti/[redacted]" in text and "/ws?token=[redacted]&after=0" in text
    for secret in (CTI_TOKEN, "AT-secret", "K-secret", "S-secret", "V-secret", token):
        assert secret not in text, secret
    assert "q=token" in text  # a value that merely looks like a word is kept


def test_redact_knows_secret_parameters_and_paths() -> None:
    assert logs.redact("/telephony/cti/abc%2Fdef?x=1") == "/telephony/cti/[redacted]?x=1"
    assert logs.redact("/x?Token=1&signature=2&mykey=3&page=4") == \
        "/x?Token=[redacted]&signature=[redacted]&mykey=[redacted]&page=4"
    record = logging.LogRecord("httpx", logging.INFO, __file__, 1, 'HTTP Request: %s %s "%s"',
                               ("GET", httpx.URL("https://graph.example/v1?access_token=abc"),
                                "HTTP/1.1 200 OK"), None)
    assert logs.REDACT_TOKENS.filter(record)
    assert "abc" not in record.getMessage() and "[redacted]" in record.getMessage()
