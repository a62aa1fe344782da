"""The supervisor board (live load, reassign) and the admin pages (users, inboxes, templates,
IP allow-list enforced, audit log, channels)."""

import httpx
import pytest
from playwright.async_api import expect
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from helpdesk.access.models import IpRule
from helpdesk.audit.models import AuditLog
from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role, User
from helpdesk.calls.models import Call, CallState
from helpdesk.inboxes.models import Inbox, InboxMember
from helpdesk.realtime import presence as presences
from helpdesk.replies.models import ReplyTemplate
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Ticket
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import INBOUND_HEADERS, inbound, inbound_body
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff


def load_cell(tab, operator_id: int, status: str):  # type: ignore[no-untyped-def]
    return tab.page.locator(f"tr[data-operator-id='{operator_id}'] [data-load='{status}']")


async def test_board_shows_load_changing_live_and_reassigns(
        tabs: Tabs, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    first = await inbound(db, "b1", email="one@example.jp")
    second = await inbound(db, "b2", email="two@example.jp")
    tab = await tabs.open(boss)
    await tab.goto("/board")
    await tab.page.evaluate("window.__notReloaded = true")
    await expect(load_cell(tab, sato.id, "open")).to_have_text("0")
    assert await tab.page.locator(".board-queue tr[data-ticket-id]").count() == 2

    # Someone assigns a ticket to sato elsewhere: the board follows from the events.
    seq = await peek.last_seq()
    await begin_write(db)
    await tickets.claim(db, first.ticket_id, actor=sato)
    await db.commit()
    await tab.deliver(await peek.frames_after(seq))
    await expect(load_cell(tab, sato.id, "in_progress")).to_have_text("1")
    await expect(load_cell(tab, sato.id, "open")).to_have_text("1")
    assert await tab.page.evaluate("window.__notReloaded") is True

    # The supervisor gives the other ticket to suzuki from the board.
    row = tab.page.locator(f".board-queue tr[data-ticket-id='{second.ticket_id}']")
    await row.locator("select").select_option(str(suzuki.id))
    await row.get_by_role("button", name="割り当て").click()
    await expect(load_cell(tab, suzuki.id, "unhandled")).to_have_text("1")
    assert (await peek.get(Ticket, second.ticket_id)).assignee_id == suzuki.id
    await expect(tab.page.locator(".board-queue tr[data-ticket-id]")).to_have_count(0)
    assert await tab.page.locator("svg rect.bar-in_progress").count() >= 1

    # Presence comes as frames too.
    await tab.deliver([{"type": "presence.changed", "data": {"user_id": sato.id, "status": "online"}}])
    await expect(tab.page.locator(f"[data-presence-user='{sato.id}']")).to_have_text("オンライン")
    tab.assert_clean()


async def test_board_follows_an_assignment_over_the_socket(
        tabs: Tabs, staff: Staff, db: AsyncSession, http: httpx.AsyncClient, peek: Peek) -> None:
    boss = await staff.create("boss", Role.supervisor)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "b3")
    tab = await tabs.open(boss)
    await tab.goto("/board")
    await tab.page.wait_for_timeout(500)
    response = await http.patch(f"/api/tickets/{result.ticket_id}", headers=Staff.headers(boss),
                                json={"version": (await peek.get(Ticket, result.ticket_id)).version,
                                      "assignee_id": sato.id})
    assert response.status_code == 200
    await expect(load_cell(tab, sato.id, "unhandled")).to_have_text("1")


async def test_admin_manages_users_inboxes_and_templates(
        tabs: Tabs, staff: Staff, peek: Peek) -> None:
    admin = await staff.create("admin", Role.admin)
    tab = await tabs.open(admin)
    await tab.goto("/admin/inboxes")
    await tab.page.fill("form[hx-post='/admin/inboxes'] input[name=name]", "returns")
    await tab.page.fill("form[hx-post='/admin/inboxes'] input[name=phone_number]", "03-1234-5678")
    await tab.page.click("form[hx-post='/admin/inboxes'] button")
    await expect(tab.page.locator("#inbox-list")).to_contain_text("03-1234-5678")
    await tab.goto("/admin/users")
    form = tab.page.locator("form[hx-post='/admin/users']")
    await form.locator("input[name=name]").fill("新人 太郎")
    await form.locator("input[name=email]").fill("Newbie@Example.com")
    await form.locator("input[name=password]").fill("long enough password")
    await form.get_by_label("returns").check()
    await form.get_by_role("button").click()
    await expect(tab.page.locator(".notice")).to_have_text("ユーザーを作成しました")
    newbie = await peek.scalar(select(User).where(User.email == "newbie@example.com"))
    inbox = await peek.scalar(select(Inbox).where(Inbox.name == "returns"))
    assert newbie is not None and newbie.role == Role.operator
    assert await peek.scalar(select(InboxMember.user_id).where(InboxMember.inbox_id == inbox.id)) == newbie.id
    row = tab.page.locator(f"tr[data-user-id='{newbie.id}']")
    await row.locator("select[name=role]").select_option("supervisor")
    await row.get_by_role("button", name="保存").click()
    await expect(tab.page.locator(".notice")).to_have_text("保存しました")
    assert (await peek.get(User, newbie.id)).role == Role.supervisor
    # An admin cannot take their own admin role away.
    own = tab.page.locator(f"tr[data-user-id='{admin.id}']")
    await own.locator("select[name=role]").select_option("operator")
    await own.get_by_role("button", name="保存").click()
    await expect(tab.page.locator("#toasts")).to_contain_text("自分自身の権限変更や無効化はできません")

    await tab.goto("/admin/templates")
    new = tab.page.locator("form[hx-post='/admin/templates']")
    await new.locator("input[name=name]").fill("発送連絡")
    await new.locator("textarea").fill("{customer_name}様、本日発送しました。")
    await new.get_by_role("button").click()
    await expect(tab.page.locator("#template-list form")).to_have_count(1)
    await new.locator("input[name=name]").fill("発送連絡")
    await new.locator("textarea").fill("重複")
    await new.get_by_role("button").click()
    await expect(tab.page.locator("#toasts")).to_contain_text("同じ名前のテンプレートがあります")
    bodies = [t.body for t in await peek.scalars(select(ReplyTemplate))]
    assert bodies == ["{customer_name}様、本日発送しました。"]
    await tab.page.locator("#template-list").get_by_role("button", name="削除").click()
    await expect(tab.page.locator("#template-list form")).to_have_count(0)

    await tab.goto("/admin/audit")
    text = await tab.page.inner_text("table.audit")
    for action in ("user.create", "user.update", "inbox.create", "reply_template.create"):
        assert action in text
    await tab.goto("/admin/audit?action=user.")
    assert "inbox.create" not in await tab.page.inner_text("table.audit")
    await tab.goto("/admin/channels")
    assert "接続済み" in await tab.page.inner_text("tr[data-channel='api']")  # INBOUND_TOKEN is set
    assert "未設定" in await tab.page.inner_text("tr[data-channel='line']")
    tab.assert_clean()


async def test_ip_allow_list_guards_staff_pages_but_not_provider_callbacks(
        staff: Staff, db: AsyncSession, database_url: str, tabs: Tabs) -> None:
    admin = await staff.create("admin", Role.admin, inboxes=["default"])
    cookie = {SESSION_COOKIE: Staff.cookie(admin)}
    with LiveServer(make_settings(database_url, htmx_cdn_url="")) as live:
        tab = await tabs.open(admin)
        tab.base = live.url
        await tab.context.add_cookies([{"name": SESSION_COOKIE, "value": cookie[SESSION_COOKIE],
                                        "url": live.url}])
        await tab.goto("/admin/access")
        form = tab.page.locator("form[hx-post='/admin/access']")
        await form.locator("input[name=network]").fill("10.0.0.0/8")
        await form.get_by_role("button").click()
        await expect(tab.page.locator("#toasts")).to_contain_text("あなた自身のアドレスが締め出されます")
        await form.locator("input[name=network]").fill("not an address")
        await form.get_by_role("button").click()
        await expect(tab.page.locator("#toasts")).to_contain_text("CIDRブロックではありません")
        await form.locator("input[name=network]").fill("127.0.0.1")
        await form.get_by_role("button").click()
        await expect(tab.page.locator("#rule-list")).to_contain_text("127.0.0.1/32")
        async with httpx.AsyncClient(base_url=live.url, cookies=cookie) as client:
            assert (await client.get("/inbox")).status_code == 200
            # Another admin elsewhere narrows the list to an office network.
            await begin_write(db)
            db.add(IpRule(network="10.1.0.0/16", note="本社"))
            await db.commit()
            await db.execute(IpRule.__table__.delete().where(IpRule.network == "127.0.0.1/32"))
            await db.commit()
            for _ in range(50):  # other workers re-read the list within seconds
                if (await client.get("/inbox", headers={"accept": "text/html"})).status_code == 403:
                    break
                await tab.page.wait_for_timeout(200)
            refused = await client.get("/inbox", headers={"accept": "text/html"})
            assert refused.status_code == 403
            assert "このネットワークアドレスからは利用できません" in refused.text
            api = await client.get("/api/tickets", headers={"Authorization": f"Bearer {Staff.token(admin)}"})
            assert api.status_code == 403
            # The live socket too, although it is served ahead of the middleware stack.
            ws_url = live.url.replace("http", "ws") + f"/ws?token={Staff.token(admin)}"
            with pytest.raises(InvalidStatus) as refused_socket:
                async with connect(ws_url) as ws:
                    await ws.recv()
            assert refused_socket.value.response.status_code == 403
            inbound_ok = await client.post("/api/inbound", json=inbound_body(),
                                           headers={**INBOUND_HEADERS, "Idempotency-Key": "ip-1"})
            assert inbound_ok.status_code == 201
        assert await db.scalar(select(AuditLog.id).where(AuditLog.action == "ip_rule.add")) is not None
        await begin_write(db)
        await db.execute(IpRule.__table__.delete())
        await db.commit()


async def test_board_renders_presence_and_calls_in_progress_from_the_start(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    boss = await staff.create("boss", Role.supervisor)
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    suzuki = await staff.create("suzuki", Role.operator, inboxes=["default"])
    await begin_write(db)
    db.add(Call(provider="cti", call_id="board-1", direction="in", from_number="+81312345678",
                to_number="+81300000000", state=CallState.answered, inbox_id=1,
                operator_id=suzuki.id))
    db.add(Call(provider="cti", call_id="board-2", direction="in", from_number="+819011112222",
                to_number="+81300000000", state=CallState.ringing, inbox_id=1))
    db.add(Call(provider="cti", call_id="board-3", direction="in", from_number="+819033334444",
                to_number="+81300000000", state=CallState.ended, inbox_id=1))
    await db.commit()
    operator = await tabs.open(sato)
    await operator.goto("/inbox")  # sato's page opens a socket: sato is online
    for _ in range(50):
        if any(p["status"] == "online" for p in await presence_of(db, sato.id)):
            break
        await operator.page.wait_for_timeout(100)
    tab = await tabs.open(boss)
    await tab.goto("/board")
    # Rendered by the server: no frame has been delivered to this page.
    assert await tab.page.inner_text(f"[data-presence-user='{sato.id}']") == "オンライン"
    assert await tab.page.inner_text(f"[data-presence-user='{suzuki.id}']") == "オフライン"
    assert await tab.page.inner_text(f"[data-call-user='{suzuki.id}']") == "+81312345678"
    calls = tab.page.locator("#live-calls li")
    assert await calls.count() == 2
    assert "+819011112222" in await tab.page.inner_text("#live-calls")
    assert "+819033334444" not in await tab.page.inner_text("#live-calls")
    # Then the socket keeps it current.
    await tab.deliver([{"type": "call.ended", "data": {"call": {
        "id": (await call_pk(db, "board-2")), "state": "ended", "from": "+819011112222"}}}])
    await expect(calls).to_have_count(1)
    tab.assert_clean()


async def presence_of(db: AsyncSession, user_id: int) -> list[dict[str, object]]:
    await db.commit()  # a fresh snapshot
    rows = await presences.presence_list(db)
    return [p.model_dump() for p in rows if p.user_id == user_id]


async def call_pk(db: AsyncSession, call_id: str) -> int:
    await db.commit()
    return int(await db.scalar(select(Call.id).where(Call.call_id == call_id)))
