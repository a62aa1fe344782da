"""The incoming-call card over any page, the caller log and the CTI settings page."""

from datetime import timedelta
from decimal import Decimal

import httpx
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role
from helpdesk.customers.models import Order, OrderItem
from helpdesk.db import utcnow
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Ticket
from tests.support.browser import Tabs
from tests.support.inbound import inbound
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff


async def known_caller(db: AsyncSession) -> int:
    result = await inbound(db, "p1", name="高橋 陽菜", email="hina@example.jp", phone="03-1234-5678")
    await begin_write(db)
    ticket = await db.get(Ticket, result.ticket_id)
    for n, (days, name) in enumerate([(30, "有機煎茶 100g"), (2, "抹茶どら焼き 6個入")]):
        order = Order(customer_id=ticket.customer_id, number=f"EC-77{n}", total=Decimal(1620),
                      ordered_at=utcnow() - timedelta(days=days))
        db.add(order)
        await db.flush()
        db.add(OrderItem(order_id=order.id, sku=f"S{n}", name=name, unit_price=Decimal(1620)))
    await db.commit()
    assert ticket.customer_id is not None
    return ticket.customer_id


def ringing(call_id: int, number: str, customer_id: int | None) -> dict:
    call = {"id": call_id, "call_id": f"CA{call_id}", "provider": "cti", "direction": "in",
            "from": number, "to": "+81312345678", "state": "ringing", "customer_id": customer_id,
            "operator_id": None, "done": False}
    return {"seq": 100 + call_id, "type": "call.ringing", "at": utcnow().isoformat(), "data": {"call": call}}


async def test_ringing_pops_the_card_with_name_and_latest_order_over_any_page(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    customer_id = await known_caller(db)
    tab = await tabs.open(sato)
    await tab.goto("/customers")
    await tab.deliver([ringing(1, "+81312345678", customer_id)])
    card = tab.page.locator(".pop-card[data-call-id='1']")
    await expect(card.locator(".pop-name")).to_contain_text("高橋 陽菜")
    orders = card.locator(".pop-order")
    await expect(orders.first).to_contain_text("EC-771")  # the newest order first
    assert "抹茶どら焼き" in await orders.first.inner_text()
    assert await card.locator(".pop-number").inner_text() == "+81312345678"
    # Another operator answered: the card goes away.
    await tab.deliver([{"type": "call.answered", "data": {"call": {"id": 1, "operator_id": 999}}}])
    await expect(card).to_have_count(0)
    # An unknown number: "new customer".
    await tab.goto("/inbox")
    await tab.deliver([ringing(2, "+819099998888", None)])
    await expect(tab.page.locator(".pop-card[data-call-id='2'] .pop-name")).to_have_text("新規顧客")
    await tab.page.locator(".pop-card[data-call-id='2'] .pop-close").click()
    await expect(tab.page.locator(".pop-card")).to_have_count(0)
    tab.assert_clean()


async def test_card_looks_up_the_number_when_the_event_names_no_customer(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    await known_caller(db)
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    await tab.deliver([ringing(3, "０３－１２３４－５６７８", None)])
    await expect(tab.page.locator(".pop-card[data-call-id='3'] .pop-name")).to_contain_text("高橋 陽菜")


async def test_phone_pages_say_when_the_phone_system_is_missing(tabs: Tabs, staff: Staff) -> None:
    # The browser's server has neither Twilio nor a CTI token configured.
    admin = await staff.create("admin", Role.admin)
    tab = await tabs.open(admin)
    await tab.goto("/calls")
    await expect(tab.page.locator("#call-status")).to_have_text("電話システムが接続されていません。")
    await tab.goto("/admin/cti")
    await expect(tab.page.locator("#cti-status")).to_have_text("電話システムが接続されていません。")


async def test_generic_cti_new_call_pops_the_card(
        tabs: Tabs, staff: Staff, db: AsyncSession, database_url: str) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    customer_id = await known_caller(db)
    with LiveServer(make_settings(database_url, htmx_cdn_url="", cti_token="cti-secret")) as live:
        tab = await tabs.open(sato)
        tab.base = live.url
        await tab.context.add_cookies([{"name": SESSION_COOKIE, "url": live.url,
                                        "value": Staff.cookie(sato)}])
        await tab.goto("/inbox")
        await tab.page.wait_for_timeout(500)
        async with httpx.AsyncClient(base_url=live.url) as client:
            response = await client.post("/telephony/cti/cti-secret", data={
                "event": "newCall", "from": "03-1234-5678", "to": "+81312345678", "direction": "in",
                "callId": "cti-call-1", "user[]": "sato@example.com"})
            assert response.status_code == 200
        card = tab.page.locator(".pop-card")
        await expect(card.locator(".pop-name")).to_contain_text("高橋 陽菜")
        await expect(card.locator(".pop-order").first).to_contain_text("EC-771")
        # With a phone system configured, the caller log lists the call instead of a warning.
        await tab.goto("/calls")
        await expect(tab.page.locator(f"#call-rows a[href='/customers/{customer_id}']")).to_have_count(1)
        assert await tab.page.inner_text("#call-status") == ""
