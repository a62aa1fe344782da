"""Telephony fixtures: a server with Twilio and CTI configured, a fake Twilio REST API on a
loopback port, request signing, and builders for inboxes, operators and customers with orders."""

import base64
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from starlette.applications import Starlette
from starlette.datastructures import ImmutableMultiDict
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from helpdesk.auth.models import Role, User
from helpdesk.customers import service as customers
from helpdesk.customers.models import Customer, IdentityKind, Order, OrderItem
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import presence as presences
from helpdesk.realtime.models import Event
from helpdesk.storage.sessions import begin_write
from tests.support.server import LiveServer, free_port, make_settings, serving
from tests.support.staff import Staff

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-auth-token-for-tests"
CTI_TOKEN = "cti-token-for-tests"
PUBLIC_URL = "https://helpdesk.example.jp"
SALES_NUMBER = "+815012345678"


@dataclass
class FakeTwilio:
    """Twilio's REST API as far as we use it: create a call, send a message."""

    port: int = field(default_factory=free_port)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: int | None = None
    counter: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _create(self, request: Request) -> JSONResponse:
        auth = request.headers.get("authorization", "")
        form = await request.form()
        self.requests.append({"path": request.url.path, "auth": auth,
                              "form": ImmutableMultiDict(form.multi_items())})
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if auth != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, 401)
        if self.fail_with:
            return JSONResponse({"code": 21211, "message": "Invalid 'To' Phone Number",
                                 "status": self.fail_with}, self.fail_with)
        kind = "Calls" if request.url.path.endswith("/Calls.json") else "Messages"
        sid = ("CA" if kind == "Calls" else "SM") + f"{next(self.counter):032x}"
        return JSONResponse({"sid": sid, "account_sid": ACCOUNT_SID, "to": form.get("To"),
                             "from": form.get("From"), "status": "queued"}, 201)

    async def _update(self, request: Request) -> JSONResponse:
        """A call's TwiML or status changed in flight (transfers)."""
        form = await request.form()
        self.requests.append({"path": request.url.path, "auth": request.headers.get("authorization", ""),
                              "form": ImmutableMultiDict(form.multi_items())})
        if self.fail_with:
            return JSONResponse({"code": 20404, "message": "Not found", "status": self.fail_with},
                                self.fail_with)
        sid = request.path_params["sid"].removesuffix(".json")
        return JSONResponse({"sid": sid, "account_sid": ACCOUNT_SID, "status": "in-progress"}, 200)

    def app(self) -> Starlette:
        path = "/2010-04-01/Accounts/{account}/{kind}"
        return Starlette(routes=[Route(path, self._create, methods=["POST"]),
                                 Route("/2010-04-01/Accounts/{account}/Calls/{sid}", self._update,
                                       methods=["POST"])])


@pytest.fixture(scope="session")
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    with serving(fake.app(), fake.port, lifespan="off"):
        yield fake


@pytest.fixture(scope="session")
def tel_server(database_url: str, fake_twilio: FakeTwilio) -> Iterator[LiveServer]:
    """A server with Twilio (pointed at the fake) and generic CTI configured."""
    settings = make_settings(
        database_url, public_url=PUBLIC_URL, twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN, twilio_api_base=fake_twilio.url, cti_token=CTI_TOKEN,
        twilio_api_key="SK" + "1" * 32, twilio_api_secret="api-secret-for-tests-0123456789abcdef",
        twilio_twiml_app_sid="AP" + "2" * 32,
    )
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
async def tel(tel_server: LiveServer, engine: AsyncEngine,
              fake_twilio: FakeTwilio) -> AsyncIterator[httpx.AsyncClient]:
    fake_twilio.requests.clear()
    fake_twilio.fail_with = None
    async with httpx.AsyncClient(base_url=tel_server.url, timeout=30) as client:
        yield client


def signature(path: str, params: list[tuple[str, str]], *, token: str = AUTH_TOKEN,
              base: str = PUBLIC_URL) -> str:
    return RequestValidator(token).compute_signature(base + path, ImmutableMultiDict(params))


async def twilio_post(client: httpx.AsyncClient, path: str, params: dict[str, str] | list[tuple[str, str]],
                      *, sign: str | None = "auto") -> httpx.Response:
    """POST a form the way Twilio does, signed over PUBLIC_URL + path unless told otherwise."""
    pairs = list(params.items()) if isinstance(params, dict) else list(params)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign == "auto":
        headers["X-Twilio-Signature"] = signature(path, pairs)
    elif sign is not None:
        headers["X-Twilio-Signature"] = sign
    return await client.post(path, content=urlencode(pairs).encode(), headers=headers)


def voice_params(sid: str, caller: str, to: str = SALES_NUMBER) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": ACCOUNT_SID, "From": caller, "To": to,
            "CallStatus": "ringing", "Direction": "inbound", "ApiVersion": "2010-04-01"}


def status_params(sid: str, status: str, seq: int, **extra: str) -> dict[str, str]:
    return {"CallSid": sid, "AccountSid": ACCOUNT_SID, "CallStatus": status,
            "SequenceNumber": str(seq), "Direction": "inbound", "To": SALES_NUMBER, **extra}


async def cti_post(client: httpx.AsyncClient, body: dict[str, Any] | list[tuple[str, str]], *,
                   token: str = CTI_TOKEN, as_json: bool = False) -> httpx.Response:
    if as_json:
        return await client.post(f"/telephony/cti/{token}", json=body)
    pairs = list(body.items()) if isinstance(body, dict) else body
    return await client.post(f"/telephony/cti/{token}", content=urlencode(pairs).encode(),
                             headers={"Content-Type": "application/x-www-form-urlencoded"})


@dataclass
class Floor:
    """A sales inbox with a number, operators in it and elsewhere, and a known customer."""

    sales_ops: list[User]
    other_op: User
    supervisor: User
    customer_id: int


async def online(db: AsyncSession, *users: User) -> None:
    await begin_write(db)
    for user in users:
        assert user.id is not None
        # A socket of a long-lived test node: no server's sweep lapses it during the test.
        await presences.connect(db, connection_id=uuid4().hex, user_id=user.id, node="test",
                               now=utcnow(), ttl=timedelta(hours=1))
    await db.commit()


async def customer_with_orders(db: AsyncSession, phone: str = "+81312345678",
                               name: str = "山田 太郎", orders: int = 12) -> int:
    await begin_write(db)
    customer = await customers.resolve(db, identities=[(IdentityKind.phone, phone)], name=name)
    assert customer.id is not None
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for i in range(orders):
        order = Order(customer_id=customer.id, number=f"{customer.id}-{i:04d}",
                      ordered_at=start + timedelta(days=i), status="shipped",
                      total=Decimal(1000 + i))
        db.add(order)
        await db.flush()
        assert order.id is not None
        db.add(OrderItem(order_id=order.id, sku=f"SKU-{i}", name=f"商品{i}", quantity=1,
                         unit_price=Decimal(1000 + i)))
    customer.orders_count, customer.total_spent = orders, Decimal(sum(1000 + i for i in range(orders)))
    customer.last_order_at = start + timedelta(days=orders - 1)
    await db.commit()
    return customer.id


async def floor(db: AsyncSession, staff: Staff, *, sales_ops: int = 2) -> Floor:
    await begin_write(db)
    await inbox_service.create_inbox(db, name="sales", phone_number="050-1234-5678")
    await inbox_service.create_inbox(db, name="support", phone_number="0120-000-111")
    await db.commit()
    ops = [await staff.create(f"sales{i}", inboxes=["sales"]) for i in range(sales_ops)]
    other = await staff.create("support0", inboxes=["support"])
    boss = await staff.create("boss", role=Role.supervisor)
    await online(db, *ops, other)
    customer_id = await customer_with_orders(db)
    return Floor(ops, other, boss, customer_id)


async def events_of(db: AsyncSession, kind: str) -> list[Event]:
    await db.rollback()
    found = list(await db.scalars(select(Event).where(Event.type == kind).order_by(Event.seq)))
    await db.commit()  # end the read so the server's writers are not held up (SQLite)
    return found


async def count(db: AsyncSession, model: type, *where: Any) -> int:
    await db.rollback()
    found = int(await db.scalar(select(func.count()).select_from(model).where(*where)) or 0)
    await db.commit()
    return found


async def a_customer(db: AsyncSession, customer_id: int) -> Customer | None:
    await db.rollback()
    found = await db.get(Customer, customer_id)
    await db.commit()
    return found
