"""Searching tickets: short Japanese words, newest first, pages, permissions, AND, exact text.

Each test runs with the page plan as shipped, then made to always order the index's answer,
always walk, and to choose per word at two matches, so both ways are checked on a handful of rows.
"""

import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import Role, User
from helpdesk.customers.models import Customer
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inboxes
from helpdesk.inboxes.models import Inbox
from helpdesk.search import service as search
from helpdesk.search.models import SearchEntry
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import queries, searching
from helpdesk.tickets.models import Channel, Direction, Message, Ticket
from tests.support.staff import Staff

START = utcnow() - timedelta(days=30)


@pytest.fixture(params=["shipped", "index", "walk", "either"], autouse=True)
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    bound = {"index": 10**9, "walk": -1, "either": 2}.get(request.param)
    if bound is not None:  # index: always order the index's answer; walk: always walk
        monkeypatch.setattr(searching, "FEWEST", bound)
        monkeypatch.setattr(searching, "MOST", bound)
    yield request.param


@dataclass
class Desk:
    """Tickets written the way ingest writes them: a subject entry and one entry per message."""

    db: AsyncSession
    texts: dict[int, list[str]] = field(default_factory=dict)
    customer_texts: dict[int, str] = field(default_factory=dict)
    owner: dict[int, int | None] = field(default_factory=dict)

    async def customer(self, name: str) -> int:
        customer = Customer(name=name)
        self.db.add(customer)
        await self.db.flush()
        assert customer.id is not None
        search.add(self.db, kind="customer", ref_id=customer.id, text_=name, customer_id=customer.id)
        self.customer_texts[customer.id] = name
        return customer.id

    async def ticket(self, subject: str, *bodies: str, minutes: int, inbox_id: int = 1,
                     customer_id: int | None = None) -> int:
        at = START + timedelta(minutes=minutes)
        ticket = Ticket(number=secrets.randbelow(10**9), subject=subject, channel=Channel.email,
                        inbox_id=inbox_id, customer_id=customer_id, token=secrets.token_hex(8),
                        created_at=at, updated_at=at)
        self.db.add(ticket)
        await self.db.flush()
        assert ticket.id is not None
        search.add(self.db, kind="subject", ref_id=ticket.id, text_=subject,
                   ticket_id=ticket.id, customer_id=customer_id)
        for body in bodies:
            message = Message(ticket_id=ticket.id, direction=Direction.inbound,
                              channel=Channel.email, author="c", body_text=body, created_at=at)
            self.db.add(message)
            await self.db.flush()
            search.add(self.db, kind="message", ref_id=message.id or 0, text_=body,
                       ticket_id=ticket.id, customer_id=customer_id)
        self.texts[ticket.id] = [subject, *bodies]
        self.owner[ticket.id] = customer_id
        return ticket.id


@pytest.fixture
async def desk(db: AsyncSession) -> Desk:
    await begin_write(db)
    return Desk(db)


@pytest.fixture
async def boss(staff: Staff) -> User:
    return await staff.create("boss", Role.supervisor)


async def found(db: AsyncSession, user: User, q: str, *, limit: int = 50) -> list[int]:
    """Every ticket the search lists for ``user``, page after page."""
    await db.flush()
    ids: list[int] = []
    cursor = None
    while True:
        items, cursor = await queries.list_tickets(db, user, queries.TicketFilter(q=q),
                                                   cursor=cursor, limit=limit)
        ids += [item.id for item in items]
        if cursor is None:
            return ids


def newest_first(desk: Desk, ids: list[int]) -> list[int]:
    return sorted(ids, reverse=True)  # the fixtures' tickets grow newer with their id


async def test_two_and_one_character_japanese_words(desk: Desk, boss: User) -> None:
    refund = await desk.ticket("返品について", "届いた品を返品したい", minutes=1)
    address = await desk.ticket("住所変更", "引っ越しました", minutes=2)
    delivery = await desk.ticket("配送", "まだ届きません", minutes=3)
    ending = await desk.ticket("お問い合わせ", "箱", minutes=4)  # one character, alone
    assert await found(desk.db, boss, "返品") == [refund]
    assert await found(desk.db, boss, "住所") == [address]
    assert await found(desk.db, boss, "配送") == [delivery]
    assert await found(desk.db, boss, "箱") == [ending]
    assert await found(desk.db, boss, "届") == [delivery, refund]
    assert await found(desk.db, boss, "返品配送") == []


async def test_newest_activity_first_across_pages(desk: Desk, boss: User) -> None:
    ids = [await desk.ticket(f"件名 {i}", "返品の相談" if i % 3 else "別件", minutes=i)
           for i in range(20)]
    # An old ticket touched just now comes first: the order is activity, not creation.
    touched = ids[1]
    ticket = await desk.db.get(Ticket, touched)
    assert ticket is not None
    ticket.updated_at = START + timedelta(days=1)
    expected = [touched] + [i for i in reversed(ids) if i != touched and ids.index(i) % 3]
    assert await found(desk.db, boss, "返品", limit=4) == expected
    assert await found(desk.db, boss, "返品", limit=1) == expected
    assert await found(desk.db, boss, "返品", limit=50) == expected


async def test_hidden_inboxes_never_leak(desk: Desk, staff: Staff) -> None:
    hidden = Inbox(name="hidden")
    desk.db.add(hidden)
    await desk.db.flush()
    assert hidden.id is not None
    seen = [await desk.ticket("返品", "返品します", minutes=i) for i in range(0, 12, 2)]
    for i in range(1, 12, 2):
        await desk.ticket("返品", "返品します", minutes=i, inbox_id=hidden.id)
    customer = await desk.customer("返品 太郎")
    await desk.ticket("別件", "別件", minutes=30, inbox_id=hidden.id, customer_id=customer)
    operator = await staff.create("op", Role.operator, inboxes=["default"])
    await begin_write(desk.db)
    assert await inboxes.visible_inbox_ids(desk.db, operator) == {1}
    assert await found(desk.db, operator, "返品", limit=2) == newest_first(desk, seen)
    assert await found(desk.db, operator, "返", limit=5) == newest_first(desk, seen)


async def test_text_kept_exactly_and_found_by_its_folded_key(desk: Desk, boss: User) -> None:
    body = "ＲＥＦＵＮＤ　ﾍﾝﾋﾟﾝ 返品①"
    ticket = await desk.ticket("Order", body, minutes=1)
    for q in ("refund", "REFUND", "ＲＥＦ", "ヘンピン", "へんぴん", "1", "返品1"):
        assert await found(desk.db, boss, q) == [ticket], q
    stored = await desk.db.scalar(select(col(Message.body_text)).where(col(Message.ticket_id) == ticket))
    assert stored == body


async def test_every_word_must_match_somewhere_in_the_ticket(desk: Desk, boss: User) -> None:
    customer = await desk.customer("山田 花子")
    both = await desk.ticket("返品の件", "住所が違います", minutes=1, customer_id=customer)
    one = await desk.ticket("返品の件", "色が違います", minutes=2)
    assert await found(desk.db, boss, "返品 住所") == [both]
    assert await found(desk.db, boss, "返品　住所") == [both]  # an ideographic space too
    assert await found(desk.db, boss, "住所 色") == []
    assert await found(desk.db, boss, "山田 返品") == [both]  # the customer's name counts
    assert await found(desk.db, boss, "違います 返品") == [one, both]


ALPHABET = "返品配送住所届きまaBcｂ1１ー 　"


def reference(desk: Desk, q: str) -> list[int]:
    """A plain scan: a ticket matches when each word is in one of its texts or its customer's."""
    terms = search.terms(q)
    hits = []
    for ticket_id, texts in desk.texts.items():
        owner = desk.owner[ticket_id]
        keys = [search.fold(t) for t in texts]
        if owner is not None:
            keys.append(search.fold(desk.customer_texts[owner]))
        if all(any(form in key for key in keys for form in term.forms) for term in terms):
            hits.append(ticket_id)
    return newest_first(desk, hits)


async def test_same_tickets_as_a_plain_scan(desk: Desk, boss: User) -> None:
    rng = random.Random(25)

    def text(low: int, high: int) -> str:
        return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(low, high)))

    owners = [await desk.customer(text(2, 6)) for _ in range(5)]
    for minute in range(60):
        await desk.ticket(text(1, 8), *[text(1, 20) for _ in range(rng.randint(0, 2))],
                          minutes=minute, customer_id=rng.choice([None, *owners]))
    queries_ = {text(1, 3) for _ in range(40)} | {f"{text(1, 2)} {text(1, 2)}" for _ in range(15)}
    for q in sorted(queries_):
        if not search.terms(q):
            continue
        assert await found(desk.db, boss, q, limit=7) == reference(desk, q), q


async def test_entries_found_through_the_index(db: AsyncSession) -> None:
    await begin_write(db)
    for i, body in enumerate(["返品します", "配送", "住所", "x"]):
        search.add(db, kind="message", ref_id=i, text_=body, ticket_id=i)
    await db.flush()
    dialect = db.get_bind().dialect.name
    for q, expected in [("返品", [0]), ("配", [1]), ("所", [2]), ("X", [3]), ("品し", [0])]:
        entries = await db.scalars(searching_entries(dialect, q))
        assert [e.ticket_id for e in entries] == expected, q
    await db.rollback()


def searching_entries(dialect: str, q: str):  # type: ignore[no-untyped-def]
    return search.matching(dialect, q).order_by(col(SearchEntry.id))



async def test_soonest_due_order_searches_too(desk: Desk, boss: User) -> None:
    ids = [await desk.ticket("件名", "返品" if i % 2 else "別件", minutes=i) for i in range(8)]
    due = await desk.db.get(Ticket, ids[5])
    assert due is not None
    due.sla_due_at = START + timedelta(days=2)
    await desk.db.flush()
    items, _ = await queries.list_tickets(desk.db, boss, queries.TicketFilter(q="返品", sort="due"),
                                          cursor=None, limit=10)
    assert [item.id for item in items] == [ids[5], ids[1], ids[3], ids[7]]
