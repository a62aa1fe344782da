"""Demo data: staff, two inboxes, 200 customers with orders, tickets on every channel and status."""

import random
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth import service as auth
from helpdesk.auth.models import Role, User
from helpdesk.customers.models import Customer, Order, OrderItem
from helpdesk.db import utcnow
from helpdesk.routing import service as routing
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, InboundMessage, Sender, Status, Ticket

DEMO_PASSWORD = "helpdesk-demo"
STAFF = [
    ("admin@example.com", "管理 花子", Role.admin, []),
    ("supervisor@example.com", "監督 一郎", Role.supervisor, []),
    ("sato@example.com", "佐藤 美咲", Role.operator, ["default", "phone"]),
    ("suzuki@example.com", "鈴木 健太", Role.operator, ["default"]),
    ("takahashi@example.com", "高橋 陽菜", Role.operator, ["phone"]),
]
FAMILY = [("佐藤", "サトウ"), ("鈴木", "スズキ"), ("高橋", "タカハシ"), ("田中", "タナカ"),
          ("伊藤", "イトウ"), ("渡辺", "ワタナベ"), ("山本", "ヤマモト"), ("中村", "ナカムラ"),
          ("小林", "コバヤシ"), ("加藤", "カトウ"), ("吉田", "ヨシダ"), ("山田", "ヤマダ")]
GIVEN = [("太郎", "タロウ"), ("花子", "ハナコ"), ("翔太", "ショウタ"), ("さくら", "サクラ"),
         ("大翔", "ヒロト"), ("結衣", "ユイ"), ("蓮", "レン"), ("陽菜", "ヒナ"), ("悠真", "ユウマ")]
PRODUCTS = [("TEA-001", "有機煎茶 100g", 1200), ("TEA-014", "ほうじ茶ティーバッグ 30包", 980),
            ("CUP-203", "有田焼 湯呑み", 3500), ("SWT-011", "抹茶どら焼き 6個入", 1620),
            ("GFT-100", "ギフトセット 桐箱入り", 8800)]
QUESTIONS = ["注文した商品がまだ届きません。配送状況を教えてください。",
             "湯呑みが割れて届きました。交換をお願いできますか？",
             "領収書の宛名を変更したいです。", "定期便の解約方法を教えてください。",
             "ギフト包装は可能でしょうか？", "返品の手続きについて質問があります。"]
CHANNELS = [Channel.email, Channel.chat, Channel.line, Channel.messenger, Channel.instagram,
            Channel.whatsapp, Channel.sms, Channel.phone, Channel.api]


async def has_data(session: AsyncSession) -> bool:
    """True when users already exist (demo data is loaded once)."""
    return bool(await session.scalar(select(func.count()).select_from(User)))


async def load(session: AsyncSession, *, seed: int = 7) -> None:
    """Fill an empty database with demo data (the caller commits)."""
    rng = random.Random(seed)
    await routing.create_inbox(session, name="phone", phone_number="+81312345678")
    staff = [await auth.create_user(session, email=e, name=n, role=r, password=DEMO_PASSWORD,
                                    inboxes=i) for e, n, r, i in STAFF]
    operators = [u for u in staff if u.role == Role.operator]
    customer_ids = []
    for index in range(200):
        result = await tickets.ingest(session, _first_contact(rng, index))
        ticket = await session.get(Ticket, result.ticket_id)
        assert ticket is not None and ticket.customer_id is not None
        customer_ids.append(ticket.customer_id)
        await _shape(session, rng, ticket, index, operators)
    for customer_id in customer_ids:
        await _orders(session, rng, customer_id)


def _first_contact(rng: random.Random, index: int) -> InboundMessage:
    family, given = FAMILY[index % len(FAMILY)], GIVEN[index % len(GIVEN)]
    channel = CHANNELS[index % len(CHANNELS)]
    phone = f"090-{1000 + index:04d}-{rng.randint(1000, 9999)}"
    sender = Sender(name=f"{family[0]} {given[0]}", email=f"customer{index}@example.jp",
                    phone=phone)
    if channel == Channel.line:
        sender.line_id = f"U{index:032x}"
    return InboundMessage(
        channel=channel, external_id=f"demo-{index}", sender=sender,
        subject=f"【{family[0]}様】お問い合わせ" if channel == Channel.email else None,
        body_text=rng.choice(QUESTIONS), inbox="phone" if channel == Channel.phone else "default",
        received_at=utcnow() - timedelta(minutes=rng.randint(5, 60 * 24 * 14)),
    )


async def _shape(
    session: AsyncSession, rng: random.Random, ticket: Ticket, index: int, operators: list[User]
) -> None:
    status = list(Status)[index % len(Status)]
    members = [u for u in operators
               if ticket.inbox_id in await routing.inbox_ids_of(session, u.id or 0)]
    if status != Status.unhandled and members:
        ticket.assignee_id = rng.choice(members).id
    ticket.status = status
    ticket.pending_reason = "お客様の返信待ち" if status == Status.pending else None
    customer = await session.get(Customer, ticket.customer_id)
    if customer is not None:
        family = FAMILY[index % len(FAMILY)][1]
        customer.name_kana = f"{family} {GIVEN[index % len(GIVEN)][1]}"


async def _orders(session: AsyncSession, rng: random.Random, customer_id: int) -> None:
    customer = await session.get(Customer, customer_id)
    assert customer is not None
    for n in range(rng.choice([0, 1, 1, 2, 3, 5, 8])):
        ordered_at = utcnow() - timedelta(days=rng.randint(1, 400))
        picks = rng.sample(PRODUCTS, k=rng.randint(1, 3))
        items = [(sku, name, rng.randint(1, 3), Decimal(price)) for sku, name, price in picks]
        total = sum((q * p for _, _, q, p in items), Decimal(0))
        order = Order(customer_id=customer_id, number=f"EC{customer_id:05d}{n:02d}",
                      ordered_at=ordered_at, status="発送済", total=total)
        session.add(order)
        await session.flush()
        session.add_all(OrderItem(order_id=order.id or 0, sku=s, name=nm, quantity=q, unit_price=p)
                        for s, nm, q, p in items)
        customer.orders_count += 1
        customer.total_spent += total
        customer.first_order_at = min(filter(None, [customer.first_order_at, ordered_at]))
        customer.last_order_at = max(filter(None, [customer.last_order_at, ordered_at]))
