"""A call as the operator lives it in the browser: ring, answer onto the ticket with a talk
timer, hang up into the wrap-up panel, and a warm transfer between two operators' browsers."""

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.models import Role
from helpdesk.calls.models import Call
from helpdesk.inboxes import service as inbox_service
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Ticket
from tests.support.browser import Tab, Tabs
from tests.support.database import Peek
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff
from tests.web.test_phone_pages import known_caller

CTI = "/telephony/cti/cti-secret"


@pytest.fixture(scope="module")
def cti_server(database_url: str) -> Iterator[LiveServer]:
    """A browser's server with a PBX on the generic CTI protocol."""
    with LiveServer(make_settings(database_url, htmx_cdn_url="", cti_token="cti-secret")) as live:
        yield live


@pytest.fixture
async def pbx_tabs(browser: object, cti_server: LiveServer, engine: AsyncEngine) -> Tabs:
    return Tabs(browser, cti_server)  # type: ignore[arg-type]


async def pbx(server: LiveServer, **params: str) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.post(CTI, data={"from": "03-1234-5678", "to": "+81312345678",
                                                "direction": "in", "callId": "web-1", **params})
        assert response.status_code == 200, response.text


async def answered_on_ticket(tab: Tab, ticket_id: int) -> None:
    """The answering operator's page is the ticket, with the call bar's talk timer running."""
    await expect(tab.page).to_have_url(re.compile(f"/tickets/{ticket_id}$"))
    bar = tab.page.locator(".call-bar")
    await expect(bar.locator(".call-timer")).to_have_text(re.compile(r"^0:0[1-9]|^0:[1-5]\d"))
    await expect(bar.locator(".call-ticket")).to_have_attribute("href", f"/tickets/{ticket_id}")


async def test_ring_answer_onto_the_ticket_hang_up_and_wrap_up_into_the_thread(
        pbx_tabs: Tabs, cti_server: LiveServer, staff: Staff, db: AsyncSession,
        engine: AsyncEngine) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    customer_id = await known_caller(db)
    peek = Peek(engine)
    ticket_id = await peek.scalar(select(Ticket.id).where(Ticket.customer_id == customer_id))
    tab = await pbx_tabs.open(sato)
    await tab.goto("/inbox")
    await tab.page.wait_for_timeout(500)  # the socket is open
    await pbx(cti_server, event="newCall", user="sato@example.com")
    card = tab.page.locator(".pop-card").first
    await expect(card.locator(".pop-name")).to_contain_text("高橋 陽菜")
    await expect(card.locator(".pop-ticket-link")).to_have_attribute("href", f"/tickets/{ticket_id}")
    await pbx(cti_server, event="answer", user="sato@example.com")
    await answered_on_ticket(tab, ticket_id)
    await pbx(cti_server, event="hangup", cause="normalClearing")
    panel = tab.page.locator("form.wrapup")
    await expect(panel).to_have_count(1)
    await expect(tab.page.locator(".call-bar")).to_have_count(0)
    await expect(panel.locator(".acw-timer")).to_have_text(re.compile(r"^0:0[1-9]"))
    # The panel can be closed and reopened from the caller log.
    await panel.locator(".wrapup-close").click()
    await expect(panel).to_have_count(0)
    await tab.goto("/calls")
    await tab.page.locator("#call-filter input[value='']").check()  # answered calls are done
    row = tab.page.locator("#call-rows tr").first
    await expect(row.locator(".call-customer")).to_have_text("高橋 陽菜")
    await expect(row.locator(".call-operator")).to_have_text("sato")
    await row.locator("td.actions button", has_text="後処理").click()
    panel = tab.page.locator("form.wrapup")
    await panel.locator("textarea[name=notes]").fill("配送日を案内しました")
    await panel.locator("button[type=submit]").click()  # no outcome chosen: the form says so
    await expect(panel).to_have_count(1)
    await panel.locator("select[name=disposition]").select_option("resolved")
    await panel.locator("button[type=submit]").click()
    await expect(panel).to_have_count(0)
    call = await peek.scalar(select(Call).where(Call.call_id == "web-1"))
    assert call.ticket_id == ticket_id and call.done is True
    await tab.goto(f"/tickets/{ticket_id}")
    thread = tab.page.locator("#thread")
    await expect(thread).to_contain_text("着信 03-1234-5678")
    await expect(thread).to_contain_text(re.compile(r"通話終了 通話時間 \d+秒"))
    await expect(thread).to_contain_text("通話結果: 解決")
    await expect(thread).to_contain_text("配送日を案内しました")
    tab.assert_clean()


async def test_a_warm_transfer_between_two_browsers(
        pbx_tabs: Tabs, cti_server: LiveServer, staff: Staff, db: AsyncSession,
        engine: AsyncEngine) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    customer_id = await known_caller(db)
    peek = Peek(engine)
    ticket_id = await peek.scalar(select(Ticket.id).where(Ticket.customer_id == customer_id))
    first, second = await pbx_tabs.open(sato), await pbx_tabs.open(suzuki)
    await first.goto("/inbox")
    await second.goto("/customers")
    await first.page.wait_for_timeout(500)
    await pbx(cti_server, event="newCall", user="sato@example.com")
    await pbx(cti_server, event="answer", user="sato@example.com")
    await answered_on_ticket(first, ticket_id)
    await expect(second.page.locator(".pop-card")).to_have_count(0)  # answered by someone else
    bar = first.page.locator(".call-bar")
    await bar.locator(".call-transfer").click()
    form = bar.locator(".transfer-form")
    await expect(form.locator("option", has_text="suzuki")).to_have_count(1)
    await form.locator("select[name=target]").select_option(f"user:{suzuki.id}")
    await form.locator("input[value=warm]").check()
    await form.locator("textarea[name=notes]").fill("返品の相談です。EC-771")
    await form.locator("button[type=submit]").click()
    await expect(bar.locator(".transfer-status")).to_have_text("相談中です。お客様は保留中です。")
    # The receiver's card pops with the first operator's notes.
    card = second.page.locator(".pop-card.transfer")
    await expect(card.locator(".pop-transfer-from")).to_have_text("sato")
    await expect(card.locator(".pop-transfer-notes")).to_have_text("返品の相談です。EC-771")
    await expect(card.locator(".pop-name")).to_contain_text("高橋 陽菜")
    await bar.locator(".transfer-complete").click()
    await expect(first.page.locator(".call-bar")).to_have_count(0)
    await answered_on_ticket(second, ticket_id)
    call = await peek.scalar(select(Call).where(Call.call_id == "web-1"))
    assert call.operator_id == suzuki.id
    ticket = await peek.get(Ticket, ticket_id)
    assert ticket.assignee_id == suzuki.id
    await second.goto("/calls")
    await second.page.locator("#call-filter input[value='']").check()
    await expect(second.page.locator("#call-rows tr").first.locator(".call-operator")).to_have_text("suzuki")
    first.assert_clean()
    second.assert_clean()


async def test_an_admin_sets_the_keypad_menu_from_the_voice_page(
        tabs: Tabs, staff: Staff, db: AsyncSession, engine: AsyncEngine) -> None:
    admin = await staff.create("admin", Role.admin)
    await begin_write(db)
    returns = await inbox_service.create_inbox(db, name="returns")
    default = await inbox_service.inbox_by_name(db, "default")
    await db.commit()
    tab = await tabs.open(admin)
    await tab.goto("/admin/cti")
    await tab.page.locator(f".voice-menus a[href='/admin/inboxes/{default.id}/voice']").click()
    form = tab.page.locator("#voice-form")
    await form.locator("textarea[name=greeting]").fill("お電話ありがとうございます。")
    await form.locator("input[name=menu_1_label]").fill("ご注文について")
    await form.locator("input[name=menu_2_label]").fill("返品")
    await form.locator("select[name=menu_2_inbox]").select_option(str(returns.id))
    await form.locator("input[name=menu_2_tag]").fill("返品")
    await form.locator("input[name=callback_offer]").check()
    await form.locator("button[type=submit]").click()
    await expect(tab.page.locator("#voice-status")).to_have_text("保存しました")
    await form.locator("input[name=hold_music_url]").fill("ftp://example.jp/hold.mp3")
    await form.locator("button[type=submit]").click()  # refused, with the reason shown
    await expect(tab.page.locator("#toasts .toast")).to_contain_text("hold_music_url")
    async with httpx.AsyncClient(base_url=tab.base) as client:
        saved = (await client.get(f"/api/admin/inboxes/{default.id}/voice",
                                  headers=Staff.headers(admin))).json()
    assert saved["greeting"] == "お電話ありがとうございます。" and saved["callback_offer"] is True
    assert saved["menu"] == [
        {"digit": "1", "label": "ご注文について", "inbox_id": None, "tag": None},
        {"digit": "2", "label": "返品", "inbox_id": returns.id, "tag": "返品"}]
    assert saved["hold_music_url"] is None
    tab.assert_clean()
