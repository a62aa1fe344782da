"""Working one ticket: a long thread, drafts, sending, who else is here, the controls' refusals."""

from playwright.async_api import Page, expect
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from tests.conftest import Staff
from tests.web.conftest import Tabs, inbound

NEWEST_IN_VIEW = """() => {
  const thread = document.getElementById('thread');
  const all = thread.querySelectorAll('[data-message-id]');
  const last = all[all.length - 1].getBoundingClientRect();
  const box = thread.getBoundingClientRect();
  return last.bottom <= box.bottom + 2 && last.top >= box.top - 2 && thread.scrollTop > 0;
}"""


async def newest_in_view(page: Page) -> bool:
    return bool(await page.evaluate(NEWEST_IN_VIEW))


async def test_long_thread_opens_at_newest_draft_survives_and_sending_confirms(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    for n in range(25):
        result = await inbound(db, f"m{n}", body=f"{n}通目のメッセージです。\n" + "詳しく書きます。" * 12)
    tab = await tabs.open(sato, height=768)
    await tab.goto(f"/tickets/{result.ticket_id}")
    await expect(tab.page.locator("#thread .msg")).to_have_count(25)
    assert await newest_in_view(tab.page)
    assert "24通目" in await tab.page.locator("#thread .msg").last.inner_text()

    await tab.page.fill("#reply-body", "確認いたします。少々お待ちください。")
    await tab.page.wait_for_timeout(400)  # stored after a short pause in typing
    await tab.goto("/inbox")
    await tab.goto(f"/tickets/{result.ticket_id}")
    await expect(tab.page.locator("#reply-body")).to_have_value("確認いたします。少々お待ちください。")
    await expect(tab.page.locator(".draft-note")).to_have_text("送信していない下書きを復元しました。")

    await tab.page.click("#composer button[type=submit]")
    await expect(tab.page.locator("#sent-note")).to_contain_text("返信を登録しました")
    await expect(tab.page.locator("#thread .msg")).to_have_count(26)
    await expect(tab.page.locator("#thread .msg").last).to_contain_text("確認いたします。")
    await expect(tab.page.locator("#thread .msg.just-sent")).to_have_count(1)
    assert await newest_in_view(tab.page)
    key = f"helpdesk:draft:{result.ticket_id}"
    assert await tab.page.evaluate("k => localStorage.getItem(k)", key) is None
    await tab.goto(f"/tickets/{result.ticket_id}")
    await expect(tab.page.locator("#reply-body")).to_have_value("")  # the sent draft is gone
    await expect(tab.page.locator(".draft-note")).to_have_count(0)
    tab.assert_clean()


async def test_who_opened_the_ticket_first_is_seen_at_once_by_who_comes_next(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    """Over the real socket: A was here first; B sees "A is viewing" without waiting for A's beat."""
    a = await staff.create("a", Role.operator, inboxes=["default"])
    b = await staff.create("b", Role.operator, inboxes=["default"])
    result = await inbound(db, "p1", body="至急お願いします")
    tab_a = await tabs.open(a)
    await tab_a.goto(f"/tickets/{result.ticket_id}")
    await tab_a.page.wait_for_timeout(800)  # its socket is open and it has said it is here
    tab_b = await tabs.open(b)
    await tab_b.goto(f"/tickets/{result.ticket_id}")
    chip = tab_b.page.locator(f"#presence [data-user-id='{a.id}']")
    await expect(chip).to_have_text("aさんが閲覧中", timeout=4000)  # A's own beat is every 15 s
    await expect(tab_a.page.locator(f"#presence [data-user-id='{b.id}']")).to_have_text("bさんが閲覧中")
    tab_a.assert_clean()
    tab_b.assert_clean()
