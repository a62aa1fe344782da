"""Demo data that looks like a shop's week: staff, two inboxes, 200 customers with orders, their
conversations on every channel and in every status over several days, reply templates, calls."""

import random
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth import service as auth
from helpdesk.auth.models import Role, User
from helpdesk.calls.models import Call, CallDirection, CallState, Routed
from helpdesk.customers import service as customers
from helpdesk.customers.models import Customer, CustomerIdentity, IdentityKind, Order, OrderItem
from helpdesk.db import utcnow
from helpdesk.inboxes import service as inbox_service
from helpdesk.replies import service as replies
from helpdesk.replies.models import ReplyTemplateForm
from helpdesk.search import service as search
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import (
    Channel,
    Direction,
    InboundMessage,
    Message,
    Sender,
    Status,
    Ticket,
)

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
# Conversations as they go in a shop's week: (who, text); who is "c" the customer, "o" the
# operator's reply, "n" an internal note. A ticket plays as much of one as its status implies.
THREADS = [
    [("c", "注文した商品がまだ届きません。配送状況を教えてください。"),
     ("o", "{name}様\nお問い合わせありがとうございます。ご注文の商品は昨日発送しております。"
           "お届けまで今しばらくお待ちください。"),
     ("c", "追跡番号を教えていただけますか？"),
     ("n", "ヤマト運輸に確認済み。明日午前着の予定。"),
     ("o", "追跡番号は 4827-1190-3356 です。明日午前中のお届け予定です。"),
     ("c", "無事に届きました。ありがとうございました！")],
    [("c", "湯呑みが割れて届きました。交換をお願いできますか？写真も送ります。"),
     ("o", "{name}様\nご迷惑をおかけし申し訳ございません。代わりの品をすぐにお送りします。"
           "割れた品はご返送不要です。"),
     ("n", "交換品を出荷指示済み（倉庫 B）。"),
     ("c", "ご対応ありがとうございます。到着を待っています。"),
     ("o", "交換品を本日発送いたしました。"),
     ("c", "届きました。きれいな湯呑みで満足しています。")],
    [("c", "領収書の宛名を会社名に変更したいです。"),
     ("o", "{name}様\n承知しました。宛名となる会社名を正式名称でお知らせください。"),
     ("c", "株式会社みどり商事 でお願いします。"),
     ("o", "再発行した領収書をメールでお送りしました。ご確認ください。")],
    [("c", "定期便の解約方法を教えてください。"),
     ("o", "{name}様\nマイページの「定期便の管理」から解約いただけます。"
           "次回発送の5日前までにお手続きください。"),
     ("c", "マイページにログインできません。"),
     ("n", "ログイン不可の件、システム担当に確認中。"),
     ("o", "パスワード再設定のメールをお送りしました。再設定後にお試しください。"),
     ("c", "解約できました。お世話になりました。")],
    [("c", "ギフト包装は可能でしょうか？のしも付けたいです。"),
     ("o", "{name}様\nギフト包装・のし（無料）を承ります。表書きとお名前をお知らせください。"),
     ("c", "「御歳暮」で、名前は山田でお願いします。"),
     ("o", "承りました。ご注文に反映いたしました。")],
    [("c", "返品の手続きについて質問があります。未開封なら返品できますか？"),
     ("o", "{name}様\n未開封で到着から8日以内でしたら返品を承ります。返送先をご案内しますね。"),
     ("n", "返品理由：イメージ違い。送料はお客様負担で案内。"),
     ("c", "返送しました。"),
     ("o", "返品を確認しました。3営業日以内にご返金いたします。")],
    [("c", "二重請求されているようです。カードの明細に同じ金額が2回あります。"),
     ("n", "決済代行の管理画面で確認。1件はオーソリのみ、数日で取り消される見込み。"),
     ("o", "{name}様\nご確認ありがとうございます。1件は仮売上で、数日以内に自動で取り消されます。"),
     ("c", "了解しました。取り消されたのを確認しました。")],
]
TEMPLATES = [
    ("お礼・受付", "{customer_name}様\n\nお問い合わせいただきありがとうございます。"
                  "担当の{operator_name}です。内容を確認のうえ、改めてご連絡いたします。"),
    ("発送のご案内", "{customer_name}様\n\nご注文（{last_order_number}、{last_order_date}）は"
                    "本日発送いたしました。お届けまで今しばらくお待ちください。"),
    ("返品・交換のご案内", "{customer_name}様\n\n商品到着後8日以内・未開封の場合に返品を承ります。"
                         "不良品の場合は送料当社負担で交換いたします。"),
    ("領収書の再発行", "{customer_name}様\n\n領収書を再発行し、メールでお送りしました。ご確認ください。"),
    ("締めのご挨拶", "今後とも当店をよろしくお願いいたします。\n（お問い合わせ番号 #{ticket_number}）"),
]
CHANNELS = [Channel.email, Channel.chat, Channel.line, Channel.messenger, Channel.instagram,
            Channel.whatsapp, Channel.sms, Channel.phone, Channel.api]


async def has_data(session: AsyncSession) -> bool:
    """True when users already exist (demo data is loaded once)."""
    return bool(await session.scalar(select(func.count()).select_from(User)))


async def _staff_member(session: AsyncSession, email: str, name: str, role: Role,
                        inboxes: list[str]) -> User:
    user = await auth.create_user(session, email=email, name=name, role=role, password=DEMO_PASSWORD)
    assert user.id is not None
    await inbox_service.join_named(session, user_id=user.id, names=inboxes)
    return user


async def load(session: AsyncSession, *, seed: int = 7) -> None:
    """Fill an empty database with a week of demo work (the caller commits)."""
    rng = random.Random(seed)
    now = utcnow()
    phone_inbox = await inbox_service.create_inbox(session, name="phone", phone_number="+81312345678")
    staff = [await _staff_member(session, email, name, role, inboxes)
             for email, name, role, inboxes in STAFF]
    operators = [u for u in staff if u.role == Role.operator]
    for name, body in TEMPLATES:
        await replies.save(session, ReplyTemplateForm(name=name, body=body))
    customers_seen: list[tuple[int, str]] = []
    for index in range(200):
        opened = now - timedelta(minutes=rng.randint(30, 60 * 24 * 7))
        result = await ticket_ingest.ingest(session, _first_contact(rng, index, opened))
        ticket = await session.get(Ticket, result.ticket_id)
        assert ticket is not None and ticket.customer_id is not None
        await _shape(session, rng, ticket, index, operators, opened=opened, now=now)
        customers_seen.append((ticket.customer_id, ticket.channel))
    for customer_id, _channel in customers_seen:
        await _orders(session, rng, customer_id)
    assert phone_inbox.id is not None
    await _calls(session, rng, [c for c, _ in customers_seen], phone_inbox.id, operators, now)


def _first_contact(rng: random.Random, index: int, opened: datetime) -> InboundMessage:
    family, given = FAMILY[index % len(FAMILY)], GIVEN[index % len(GIVEN)]
    channel = CHANNELS[index % len(CHANNELS)]
    phone = f"090-{1000 + index:04d}-{rng.randint(1000, 9999)}"
    sender = Sender(name=f"{family[0]} {given[0]}", email=f"customer{index}@example.jp",
                    phone=phone)
    if channel == Channel.line:
        sender.line_id = f"U{index:032x}"
    return InboundMessage(
        channel=channel, external_id=f"demo-{index}", sender=sender,
        body_text=THREADS[index % len(THREADS)][0][1],
        inbox="phone" if channel == Channel.phone else "default", received_at=opened,
    )


async def _shape(
    session: AsyncSession, rng: random.Random, ticket: Ticket, index: int, operators: list[User],
    *, opened: datetime, now: datetime,
) -> None:
    status = list(Status)[index % len(Status)]
    members = [u for u in operators
               if ticket.inbox_id in await inbox_service.inbox_ids_of(session, u.id or 0)]
    operator = rng.choice(members) if members else None
    steps = _played(THREADS[index % len(THREADS)], status, rng)
    if status != Status.unhandled or any(who == "o" for who, _ in steps):
        ticket.assignee_id = operator.id if operator else None
    customer = await session.get(Customer, ticket.customer_id)
    assert customer is not None
    await _thread(session, rng, ticket, steps[1:], customer, operator, opened=opened, now=now)
    ticket.status = status
    ticket.pending_reason = "お客様の返信待ち" if status == Status.pending else None
    if status == Status.resolved:
        ticket.resolved_at = ticket.updated_at
    family = FAMILY[index % len(FAMILY)][1]
    customer.name_kana = f"{family} {GIVEN[index % len(GIVEN)][1]}"
    await customers.reindex(session, customer)  # kana search finds demo customers


def _played(thread: list[tuple[str, str]], status: Status, rng: random.Random) -> list[tuple[str, str]]:
    """The part of a thread a ticket of ``status`` has been through: unhandled and in progress
    end on the customer, on hold on our question, resolved at the end."""
    customer = [i for i, (who, _) in enumerate(thread) if who == "c"]
    ours = [i for i, (who, _) in enumerate(thread) if who == "o"]
    again = customer[1] + 1 if len(customer) > 1 else 1  # up to the customer's answer to us
    upto = {Status.unhandled: rng.choice([1, again]), Status.in_progress: again,
            Status.pending: ours[0] + 1 if ours else 1, Status.resolved: len(thread),
            Status.no_action: 1}[status]
    return thread[:upto]


async def _thread(
    session: AsyncSession, rng: random.Random, ticket: Ticket, steps: list[tuple[str, str]],
    customer: Customer, operator: User | None, *, opened: datetime, now: datetime,
) -> None:
    """The messages after the first, spread over the days since it arrived."""
    assert ticket.id is not None
    gaps = [timedelta(minutes=rng.randint(10, 60 * 20)) for _ in steps]
    # The conversation stops somewhere between its start and now, not all at the same moment.
    room = ((now - timedelta(minutes=5)) - opened) * rng.uniform(0.4, 0.95)
    scale = min(1.0, room / sum(gaps, timedelta()) if gaps else 1.0)
    at = opened
    for n, ((who, text), gap) in enumerate(zip(steps, gaps, strict=True)):
        at += gap * scale
        ours = who != "c"
        message = Message(
            ticket_id=ticket.id, direction=Direction.outbound if ours else Direction.inbound,
            internal=who == "n", channel=ticket.channel,
            author=(operator.name if operator else "—") if ours else customer.name,
            author_user_id=operator.id if ours and operator else None,
            body_text=text.format(name=customer.name or ""), created_at=at,
            delivery_status="delivered" if who == "o" else None,
            external_id=None if ours else f"demo-{ticket.id}-{n}")
        session.add(message)
        await session.flush()
        assert message.id is not None
        search.add(session, kind="message", ref_id=message.id, text_=message.body_text,
                   ticket_id=ticket.id, customer_id=ticket.customer_id)
        if who == "o" and ticket.first_response_at is None:
            ticket.first_response_at = at
        if who != "n":
            ticket.last_message_at = at
    ticket.created_at = opened
    ticket.updated_at = at


async def _calls(
    session: AsyncSession, rng: random.Random, customer_ids: list[int], inbox_id: int,
    operators: list[User], now: datetime,
) -> None:
    """A week of calls: answered ones with their talk time, and missed ones, some called back."""
    phones = dict((await session.execute(
        select(col(CustomerIdentity.customer_id), col(CustomerIdentity.value))
        .where(col(CustomerIdentity.kind) == IdentityKind.phone))).all())
    takers = [u for u in operators if inbox_id in await inbox_service.inbox_ids_of(session, u.id or 0)]
    for n, customer_id in enumerate(rng.sample(customer_ids, k=40)):
        started = now - timedelta(minutes=rng.randint(20, 60 * 24 * 7))
        answered = rng.random() < 0.75
        talk = timedelta(seconds=rng.randint(40, 900))
        number = phones.get(customer_id, "+81312340000")
        session.add(Call(
            provider="cti", call_id=f"demo-call-{n}", direction=CallDirection.inbound,
            from_number=number, to_number="+81312345678", caller_e164=number,
            state=CallState.ended, routed=Routed.dial, inbox_id=inbox_id, customer_id=customer_id,
            operator_id=rng.choice(takers).id if answered and takers else None,
            started_at=started, answered_at=started + timedelta(seconds=8) if answered else None,
            ended_at=started + (talk if answered else timedelta(seconds=30)),
            cause="normalClearing" if answered else "noAnswer", done=answered or rng.random() < 0.5))


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
