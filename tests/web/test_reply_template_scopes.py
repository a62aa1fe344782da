"""Reply templates in categories: an operator keeps personal ones, supervisors keep the shared
ones, and the composer's picker groups both by category; nobody changes what is not theirs."""

from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.replies.models import ReplyTemplate
from tests.conftest import Staff
from tests.web.conftest import Peek, Tab, Tabs, inbound

POST = """([url, fields]) => fetch(url, {method: 'POST', headers: {
  'X-CSRF-Token': document.querySelector('meta[name=csrf-token]').content,
  'HX-Request': 'true'}, body: new URLSearchParams(fields)}).then(r => r.status)"""


async def post(tab: Tab, url: str, fields: dict[str, str]) -> int:
    return int(await tab.page.evaluate(POST, [url, fields]))


async def create(tab: Tab, *, name: str, category: str, body: str, scope: str | None = None) -> None:
    new = tab.page.locator("#new-template")
    await new.locator("input[name=name]").fill(name)
    await new.locator("input[name=category]").fill(category)
    await new.locator("textarea[name=body]").fill(body)
    if scope is not None:
        await new.locator("select[name=scope]").select_option(scope)
    await new.locator("button[type=submit]").click()
    await expect(tab.page.locator(f"#template-list input[name=name][value='{name}']")).to_have_count(1)


async def test_personal_and_shared_templates_grouped_by_category_in_the_composer(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor, inboxes=["default"])
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    result = await inbound(db, "t1", body="配送はいつですか", name="配送 花子", email="h@example.jp")

    lead = await tabs.open(boss)
    await lead.goto("/templates")
    await create(lead, name="配送のご案内", category="配送", body="{customer_name}様\n明日お届けします。",
                 scope="shared")
    tab = await tabs.open(sato)
    await tab.goto("/templates")
    # The shared template is there to read, not to change; the operator is offered no scope.
    shared = tab.page.locator("#template-list [data-template-id]", has_text="配送のご案内")
    await expect(shared.locator("textarea")).to_have_count(0)
    await expect(tab.page.locator("#new-template select[name=scope]")).to_have_count(0)
    await create(tab, name="お詫び（佐藤）", category="お詫び", body="大変失礼いたしました。佐藤")
    personal = tab.page.locator("section.template-group.personal")
    await expect(personal.locator("h2")).to_have_text("個人用 · お詫び")
    rows = await peek.scalars(select(ReplyTemplate).order_by(ReplyTemplate.id))
    assert [(t.name, t.category, t.owner_id) for t in rows] == [
        ("配送のご案内", "配送", None), ("お詫び（佐藤）", "お詫び", sato.id)]

    await tab.goto(f"/tickets/{result.ticket_id}")
    picker = tab.page.locator("#composer select[name=template_id]")
    groups = picker.locator("optgroup")
    await expect(groups).to_have_count(2)
    assert [await g.get_attribute("label") for g in await groups.all()] == ["個人用 · お詫び", "配送"]
    await picker.select_option(label="配送のご案内")
    await expect(tab.page.locator("#reply-body")).to_have_value("配送 花子様\n明日お届けします。")

    # Another operator sees the shared template but not sato's personal one.
    other = await tabs.open(suzuki)
    await other.goto(f"/tickets/{result.ticket_id}")
    options = other.page.locator("#composer select[name=template_id] option")
    assert "お詫び（佐藤）" not in await options.all_inner_texts()
    assert "配送のご案内" in await options.all_inner_texts()
    for t in (lead, tab, other):
        t.assert_clean()


async def test_nobody_changes_a_template_that_is_not_theirs(
        tabs: Tabs, staff: Staff, peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    lead = await tabs.open(boss)
    await lead.goto("/templates")
    await create(lead, name="共有の挨拶", category="挨拶", body="こんにちは", scope="shared")
    mine = await tabs.open(sato)
    await mine.goto("/templates")
    await create(mine, name="私の挨拶", category="挨拶", body="佐藤です")
    shared_id = await peek.scalar(select(ReplyTemplate.id).where(ReplyTemplate.owner_id.is_(None)))
    personal_id = await peek.scalar(select(ReplyTemplate.id).where(ReplyTemplate.owner_id == sato.id))

    intruder = await tabs.open(suzuki)
    await intruder.goto("/templates")
    change = {"name": "書き換え", "body": "書き換え"}
    assert await post(intruder, f"/templates/{shared_id}", change) == 403
    assert await post(intruder, f"/templates/{personal_id}", change) == 403
    assert await post(intruder, f"/templates/{personal_id}/delete", {}) == 403
    assert await post(intruder, "/templates", {**change, "scope": "shared"}) == 403
    assert await post(intruder, "/templates", {**change, "scope": "everyone"}) == 422
    assert await post(intruder, "/templates", {"name": "", "body": "x"}) == 422
    # Not even a supervisor changes an operator's personal template.
    assert await post(lead, f"/templates/{personal_id}", change) == 403
    # The page says why, in its toast.
    await intruder.page.evaluate(
        "id => htmx.ajax('POST', '/templates/' + id + '/delete', {target: '#template-list'})", personal_id)
    await expect(intruder.page.locator("body")).to_contain_text("個人用テンプレートは本人だけが")
    names = await peek.scalars(select(ReplyTemplate.name).order_by(ReplyTemplate.id))
    assert names == ["共有の挨拶", "私の挨拶"]
    # The owner changes their own; two people may each keep a template of the same name.
    assert await post(mine, f"/templates/{personal_id}", {"name": "私の挨拶", "body": "佐藤が承ります",
                                                          "category": "挨拶"}) == 200
    assert await post(intruder, "/templates", {"name": "私の挨拶", "body": "鈴木です"}) == 200
    assert await post(intruder, "/templates", {"name": "私の挨拶", "body": "二つ目"}) == 409
    rows = await peek.scalars(select(ReplyTemplate).order_by(ReplyTemplate.id))
    assert [(t.body, t.owner_id) for t in rows] == [
        ("こんにちは", None), ("佐藤が承ります", sato.id), ("鈴木です", suzuki.id)]
