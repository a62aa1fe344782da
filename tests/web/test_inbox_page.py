"""The inbox: status tabs with counts, filters, search, keyset pages, keys, live arrivals."""

import httpx
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, Status, Ticket, TicketUpdate
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound, inbound_body, post_inbound
from tests.support.staff import Staff


async def count_of(tab, status: str) -> int:  # type: ignore[no-untyped-def]
    return int(await tab.page.inner_text(f"#counts [data-count='{status}']"))


async def test_tabs_counts_filters_and_search(tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    await inbound(db, "a", body="湯呑みが割れていました", name="中村 大翔", email="n@example.jp")
    await inbound(db, "b", body="領収書をください", name="小林 結衣", email="k@example.jp",
                  channel=Channel.chat)
    third = await inbound(db, "c", body="返品したい", name="加藤 蓮", email="c@example.jp")
    await begin_write(db)
    ticket = await db.get(Ticket, third.ticket_id)
    await tickets.update(db, ticket, TicketUpdate(version=ticket.version, status=Status.pending,
                                                  pending_reason="確認中", tags=["返品"],
                                                  assignee_id=sato.id), actor=sato)
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    assert await count_of(tab, "unhandled") == 2 and await count_of(tab, "pending") == 1
    assert await tab.page.locator(".ticket-row").count() == 2
    await tab.page.select_option("select[name=channel]", "chat")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    assert "小林 結衣" in await tab.page.inner_text("#ticket-list")
    assert "channel=chat" in tab.page.url
    await tab.page.select_option("select[name=channel]", "")
    await tab.page.wait_for_url(lambda url: "channel=" not in url)
    await tab.page.fill("#search-box", "割れて")
    await tab.page.press("#search-box", "Enter")
    await tab.page.wait_for_url("**q=**")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    assert "中村 大翔" in await tab.page.inner_text("#ticket-list")
    await tab.page.fill("#search-box", "")
    await tab.page.press("#search-box", "Enter")
    await tab.page.wait_for_url(lambda url: "q=" not in url)
    await tab.page.click("#counts a[data-status='pending']")
    await tab.page.wait_for_url("**status=pending**")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    await tab.page.fill("input[name=tag]", "返品")
    await tab.page.press("input[name=tag]", "Enter")
    await tab.page.wait_for_url("**tag=**")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    await tab.page.check("input[name=view][value=mine]")
    await tab.page.wait_for_url("**view=mine**")
    await expect(tab.page.locator(".ticket-row")).to_have_count(1)
    assert await count_of(tab, "pending") == 1 and await count_of(tab, "unhandled") == 0
    tab.assert_clean()


async def test_keyset_pages_and_j_k_enter(tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    await begin_write(db)
    for n in range(53):
        await ticket_ingest.ingest(db, _message(n))
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    assert await tab.page.locator(".ticket-row").count() == 50
    await tab.page.click(".more-row button")
    await expect(tab.page.locator(".ticket-row")).to_have_count(53)
    numbers = [await r.get_attribute("data-ticket-id") for r in await tab.page.locator(".ticket-row").all()]
    assert len(set(numbers)) == 53  # no row twice across pages
    await tab.page.locator("body").click(position={"x": 5, "y": 300})
    await tab.page.keyboard.press("j")
    await tab.page.keyboard.press("j")
    await tab.page.keyboard.press("k")
    selected = await tab.page.get_attribute(".ticket-row.selected", "data-ticket-id")
    assert selected == numbers[0]
    await tab.page.keyboard.press("Enter")
    await tab.page.wait_for_url(f"**/tickets/{selected}")
    tab.assert_clean()


def _message(n: int):  # type: ignore[no-untyped-def]
    from helpdesk.tickets.models import InboundMessage, Sender

    return InboundMessage(channel=Channel.api, external_id=f"bulk-{n}", body_text=f"問い合わせ {n}",
                          sender=Sender(name=f"顧客 {n}", email=f"bulk{n}@example.jp"))


async def test_inbound_message_appears_and_count_rises_without_reload(
        tabs: Tabs, staff: Staff, web: httpx.AsyncClient, peek: Peek) -> None:
    """The frames come from the event table as /ws would send them; the page does the rest."""
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    await tab.page.evaluate("window.__notReloaded = true")
    assert await count_of(tab, "unhandled") == 0
    seq = await peek.last_seq()
    response = await post_inbound(web, "live-1", inbound_body("新しいお問い合わせです", name="新規 花子",
                                                              email="new@example.jp"))
    assert response.status_code == 201
    await tab.deliver(await peek.frames_after(seq))
    await expect(tab.page.locator("#counts [data-count='unhandled']")).to_have_text("1")
    await expect(tab.page.locator(".ticket-row.is-new")).to_have_count(1)
    assert "新規 花子" in await tab.page.inner_text("#ticket-list")
    assert await tab.page.evaluate("window.__notReloaded") is True
    tab.assert_clean()


async def test_inbound_message_arrives_over_the_socket(
        tabs: Tabs, staff: Staff, web: httpx.AsyncClient) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    tab = await tabs.open(sato)
    await tab.goto("/inbox")
    await tab.page.evaluate("window.__notReloaded = true")
    await tab.page.wait_for_timeout(500)  # the socket connects
    response = await post_inbound(web, "ws-1", inbound_body("ソケット経由", name="遠隔 太郎",
                                                            email="ws@example.jp"))
    assert response.status_code == 201
    await expect(tab.page.locator("#counts [data-count='unhandled']")).to_have_text("1")
    await expect(tab.page.locator("#ticket-list")).to_contain_text("遠隔 太郎")
    assert await tab.page.evaluate("window.__notReloaded") is True
    tab.assert_clean()
