"""CSRF on every state-changing request, inert customer content, CSP, htmx's integrity, errors."""

import base64
import hashlib
import re

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets.models import Channel, Message, Ticket
from helpdesk.web.templating import HTMX_INTEGRITY, HTMX_VERSION
from tests.support import ROOT
from tests.support.browser import Tabs
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.server import LiveServer, make_settings
from tests.support.staff import Staff


async def signed_in(client: httpx.AsyncClient, user) -> str:  # type: ignore[no-untyped-def]
    """Give the client a session cookie and return the page's CSRF token."""
    client.cookies.set(SESSION_COOKIE, Staff.cookie(user))
    page = await client.get("/inbox")
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert found
    return found.group(1)


async def test_state_changing_requests_need_the_token(
        web: httpx.AsyncClient, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "c1")
    token = await signed_in(web, sato)
    version = (await peek.get(Ticket, result.ticket_id)).version
    reply = {"body": "偽の返信", "composer_version": str(version)}
    url = f"/tickets/{result.ticket_id}/reply"
    no_token = await web.post(url, data=reply)
    wrong = await web.post(url, data=reply, headers={"X-CSRF-Token": "f" * 64})
    in_form_wrong = await web.post(url, data={**reply, "csrf_token": "0" * 64})
    as_json = await web.patch(f"/api/tickets/{result.ticket_id}",
                              json={"version": version, "status": "resolved"})
    assert [r.status_code for r in (no_token, wrong, in_form_wrong, as_json)] == [403, 403, 403, 403]
    assert no_token.json()["detail"].startswith("the form expired")
    assert await peek.scalar(select(func.count()).select_from(Message)) == 1
    htmx = await web.post(url, data=reply, headers={"X-CSRF-Token": token, "HX-Request": "true"})
    assert htmx.status_code == 200
    form = await web.post(url, data={**reply, "body": "本物", "composer_version": str(version + 1),
                                     "csrf_token": token})
    assert form.status_code == 200
    assert await peek.scalar(select(func.count()).select_from(Message)) == 3


async def test_bearer_api_calls_are_not_asked_for_a_csrf_token(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "c2")
    version = (await peek.get(Ticket, result.ticket_id)).version
    response = await http.patch(f"/api/tickets/{result.ticket_id}", headers=Staff.headers(sato),
                                json={"version": version, "priority": "high"})
    assert response.status_code == 200


async def test_customer_markup_is_inert_everywhere(
        tabs: Tabs, staff: Staff, db: AsyncSession) -> None:
    boss = await staff.create("boss", Role.supervisor)
    evil_name = "<script>window.__xss='name'</script><img src=x onerror=\"window.__xss='img'\">"
    mail = await inbound(db, "x1", name=evil_name, email="evil@example.jp", channel=Channel.email,
                         subject="<b onmouseover=\"window.__xss='subject'\">件名</b>",
                         body="<script>window.__xss='text'</script>",
                         body_html="<p>こんにちは</p><img src=x onerror=\"window.__xss='html'\">"
                                   "<script>window.__xss='html-script'</script>"
                                   "<a href=\"javascript:window.__xss='link'\">リンク</a>")
    # A row written by older code without sanitising must not run either.
    raw = Message(ticket_id=mail.ticket_id, direction="in", channel=Channel.email, body_text="",
                  body_html="<img src=x onerror=\"window.__xss='raw'\">"
                            "<svg onload=\"window.__xss='svg'\"></svg>")
    await begin_write(db)
    db.add(raw)
    await db.commit()
    chat = await inbound(db, "x2", name="チャット客", email="chat@example.jp", channel=Channel.chat,
                         body="<script>window.__xss='chat'</script>")
    tab = await tabs.open(boss)
    dialogs: list[str] = []
    tab.page.on("dialog", lambda d: dialogs.append(d.message))
    for path in ("/inbox", f"/tickets/{mail.ticket_id}", "/customers?q=evil", "/customers/1",
                 "/board"):
        await tab.goto(path)
        await tab.page.wait_for_load_state("networkidle")
        assert await tab.page.evaluate("window.__xss === undefined"), path
    await tab.goto(f"/tickets/{mail.ticket_id}")
    assert evil_name in await tab.page.inner_text(".customer-panel h2")  # shown as text, literally
    bodies = await tab.page.locator("#thread .body").all()
    html = "".join([await b.inner_html() for b in bodies])
    assert "こんにちは" in html
    assert "onerror" not in html and "javascript:" not in html and "<script" not in html
    await tab.page.click("#thread a")  # the defanged link does nothing
    assert await tab.page.evaluate("window.__xss === undefined")
    await tab.goto(f"/tickets/{chat.ticket_id}")
    assert "<script>window.__xss='chat'</script>" in await tab.page.inner_text("#thread")
    assert await tab.page.evaluate("window.__xss === undefined")
    assert dialogs == []
    tab.assert_clean()


async def test_pages_send_a_csp_without_inline_script_and_no_violation_happens(
        tabs: Tabs, staff: Staff, db: AsyncSession, web: httpx.AsyncClient) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "h1")
    page = await web.get("/login")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "frame-ancestors 'none'" in csp and page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text)  # no inline script element
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline handler attribute
    tab = await tabs.open(sato)
    for path in ("/inbox", f"/tickets/{result.ticket_id}", "/customers", "/calls", "/me"):
        await tab.goto(path)
        await tab.page.wait_for_load_state("networkidle")
        assert await tab.csp_violations() == [], path
    tab.assert_clean()


def test_vendored_htmx_matches_the_pinned_integrity_hash() -> None:
    data = (ROOT / "static" / "vendor" / "htmx.min.js").read_bytes()
    digest = "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()
    assert digest == HTMX_INTEGRITY
    assert f'version:"{HTMX_VERSION}"' in data.decode()


async def test_htmx_falls_back_to_the_vendored_copy_when_the_cdn_is_down(
        tabs: Tabs, staff: Staff, database_url: str) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    from tests.support.server import free_port

    dead_cdn = f"http://127.0.0.1:{free_port()}/npm/htmx.org@{HTMX_VERSION}/dist/htmx.min.js"
    with LiveServer(make_settings(database_url, htmx_cdn_url=dead_cdn)) as live:
        tab = await tabs.open(sato)
        tab.base = live.url
        await tab.context.add_cookies([{"name": SESSION_COOKIE, "url": live.url,
                                        "value": Staff.cookie(sato)}])
        requested: list[str] = []
        tab.page.on("request", lambda r: requested.append(r.url))
        await tab.goto("/inbox")
        cdn_tag = tab.page.locator(f"script[src='{dead_cdn}']")
        assert await cdn_tag.get_attribute("integrity") == HTMX_INTEGRITY
        assert await tab.page.evaluate("typeof window.htmx") == "object"
        assert dead_cdn in requested and f"{live.url}/static/vendor/htmx.min.js" in requested
        assert await tab.page.evaluate("htmx.version") == HTMX_VERSION
        tab.assert_clean()


async def test_errors_are_json_for_the_api_a_page_for_people_and_a_toast_for_htmx(
        web: httpx.AsyncClient, staff: Staff) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    token = await signed_in(web, sato)
    api = await web.get("/api/tickets/999")
    assert api.status_code == 404 and api.json() == {"detail": "ticket not found"}
    page = await web.get("/tickets/999", headers={"accept": "text/html"})
    assert page.status_code == 404 and "<html" in page.text and "チケットが見つかりません" in page.text
    toast = await web.post("/tickets/999/reply", headers={"HX-Request": "true", "X-CSRF-Token": token},
                           data={"body": "x", "composer_version": "1"})
    assert toast.status_code == 404 and toast.headers["hx-retarget"] == "#toasts"
    assert 'class="toast toast-error"' in toast.text and "<html" not in toast.text
    web.cookies.clear()
    anonymous = await web.get("/inbox", headers={"accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/login?next=/inbox"
    expired = await web.get("/inbox", headers={"HX-Request": "true"})
    assert expired.headers["hx-redirect"] == "/login?next=/inbox"


async def test_operators_cannot_open_supervisor_or_admin_pages(
        web: httpx.AsyncClient, staff: Staff) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    await signed_in(web, sato)
    for path in ("/board", "/admin/users", "/admin/audit", "/admin/access"):
        response = await web.get(path, headers={"accept": "text/html"})
        assert response.status_code == 403, path
        assert "この操作を行う権限がありません" in response.text


async def test_pages_use_the_vendored_htmx_by_default_and_ask_no_third_party(
        tabs: Tabs, staff: Staff, database_url: str) -> None:
    """An offline or slow CDN never holds a page up: by default none is asked at all."""
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    with LiveServer(make_settings(database_url)) as live:
        tab = await tabs.open(sato)
        tab.base = live.url
        await tab.context.add_cookies([{"name": SESSION_COOKIE, "url": live.url,
                                        "value": Staff.cookie(sato)}])
        requested: list[str] = []
        tab.page.on("request", lambda r: requested.append(r.url))
        await tab.goto("/inbox")
        await tab.page.wait_for_load_state("networkidle")
        assert await tab.page.evaluate("htmx.version") == HTMX_VERSION
        assert [u for u in requested if not u.startswith(live.url)] == []
        await tab.page.click("#counts a[data-status='pending']")
        await tab.page.wait_for_url("**status=pending**")  # htmx drives the tabs
        tab.assert_clean()
