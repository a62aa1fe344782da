"""Working one ticket: a long thread, drafts, sending, who else is here, the controls' refusals."""

from playwright.async_api import Page, expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Priority, Tag, Ticket, TicketTag
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff

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


async def test_assignee_menu_offers_only_allowed_choices_and_a_refusal_keeps_the_rest(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    await staff.create("boss", Role.supervisor)
    free = await inbound(db, "f1", body="返品したい", email="f@example.jp", name="返品 太郎")
    held = await inbound(db, "h1", body="請求について", email="h@example.jp", name="請求 花子")
    await begin_write(db)
    await tickets.claim(db, held.ticket_id, actor=suzuki)
    await db.commit()
    tab = await tabs.open(sato)
    await tab.goto(f"/tickets/{free.ticket_id}")
    options = await tab.page.locator("select[name=assignee_id] option").all_inner_texts()
    assert options == ["なし", "sato"]  # not the colleague, not the supervisor

    # A menu tampered with (or gone stale) offers a colleague: the refusal keeps the rest.
    await tab.page.evaluate(f"""() => {{
        const o = document.createElement('option'); o.value = '{suzuki.id}'; o.textContent = 'suzuki';
        document.querySelector('select[name=assignee_id]').appendChild(o); }}""")
    await tab.page.select_option("select[name=assignee_id]", str(suzuki.id))
    await tab.page.select_option("select[name=priority]", "high")
    await tab.page.fill("#controls input[name=tags]", "返品, 至急")
    await tab.page.click("#controls button.primary")
    await expect(tab.page.locator("#assignee-refused")).to_contain_text(
        "ほかの人への割り当てはスーパーバイザーのみ可能です")
    ticket = await peek.get(Ticket, free.ticket_id)
    assert ticket.priority == Priority.high and ticket.assignee_id is None
    assert sorted(await peek.scalars(select(Tag.name).join(TicketTag).where(
        TicketTag.ticket_id == free.ticket_id))) == ["至急", "返品"]
    await expect(tab.page.locator("#controls input[name=tags]")).to_have_value("至急, 返品")

    # Someone else holds it: the menu shows them and cannot be changed.
    await tab.goto(f"/tickets/{held.ticket_id}")
    menu = tab.page.locator("#controls select[disabled]")
    await expect(menu).to_have_text("suzuki")
    await tab.page.select_option("select[name=priority]", "urgent")
    async with tab.page.expect_response(f"**/tickets/{held.ticket_id}/update") as answer:
        await tab.page.click("#controls button.primary")
    assert (await answer.value).status == 200
    await expect(tab.page.locator("#controls select[name=priority]")).to_have_value("urgent")
    held_now = await peek.get(Ticket, held.ticket_id)
    assert held_now.priority == Priority.urgent and held_now.assignee_id == suzuki.id
    await expect(tab.page.locator("#assignee-refused")).to_have_count(0)
    tab.assert_clean()
