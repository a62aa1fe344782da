"""Every page in Japanese and in English, with nothing left untranslated."""

import re
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from playwright.async_api import expect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.access.models import IpRule
from helpdesk.auth.models import Role
from helpdesk.customers.models import Order, OrderItem
from helpdesk.db import utcnow
from helpdesk.realtime.log import event_sessions
from helpdesk.replies.models import ReplyTemplate
from helpdesk.reports import tasks as report_tasks
from helpdesk.reports.calendar import ReportCalendar
from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, Ticket
from tests.support import ROOT
from tests.support.browser import Tab, Tabs
from tests.support.inbound import inbound
from tests.support.staff import PASSWORD, Staff

CATALOGUE = ROOT / "helpdesk" / "locale" / "ja" / "LC_MESSAGES" / "messages.po"
# Names that stay as they are in Japanese UIs too.
BRANDS = {"LINE", "SMS", "API", "Messenger", "Instagram", "WhatsApp", "CIDR", "IP", "CTI", "ID",
          "HELPDESK_", "KB", "CSV", "SLA", "Excel", "UTF", "JIS", "Cc", "Bcc", "MB"}
# data-* attributes that carry ids, urls or states rather than text for people.
NOT_TEXT = {"ticketId", "version", "userId", "page", "status", "count", "load", "liveUrl",
            "presenceUser", "callUser", "operatorId", "messageId", "twilio", "autosubmit", "queue",
            "channel", "timer", "callId", "range", "inboxId", "replyAll"}

COLLECT = """notText => {
  const out = [];
  const hidden = el => el.closest('[translate="no"], script, style, noscript');
  const walk = root => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT | NodeFilter.SHOW_ELEMENT);
    let node;
    while ((node = walker.nextNode())) {
      if (node.nodeType === 1) {
        if (node.tagName === 'TEMPLATE') walk(node.content);
        if (hidden(node)) continue;
        for (const name of ['aria-label', 'placeholder', 'title', 'alt']) {
          if (node.getAttribute(name)) out.push(node.getAttribute(name));
        }
        for (const key in node.dataset) {
          if (!notText.includes(key) && node.dataset[key]) out.push(node.dataset[key]);
        }
      } else if (node.nodeValue.trim() && node.parentElement && !hidden(node.parentElement)) {
        out.push(node.nodeValue.trim());
      }
    }
  };
  walk(document.body);
  out.push(document.title);
  return out;
}"""


def untranslated(strings: list[str], language: str) -> list[str]:
    """Strings a reader of ``language`` would find in the other language."""
    strings = [re.sub(r"\{\w+\}", "", s) for s in strings]  # placeholders the page fills in
    if language == "ja":
        words = lambda s: [w for w in re.findall(r"[A-Za-z_]{2,}", s) if w not in BRANDS]  # noqa: E731
        return [s for s in strings if words(s)]
    return [s for s in strings if re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", s)]


async def check(tab: Tab, language: str, where: str) -> None:
    strings = await tab.page.evaluate(COLLECT, sorted(NOT_TEXT))
    assert strings, where
    assert untranslated(strings, language) == [], f"{where} ({language})"


def test_every_message_in_the_code_and_templates_has_a_japanese_translation() -> None:
    method_map = [("helpdesk/**.py", "python"), ("templates/**.html", "jinja2")]
    options_map = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = {message for _, _, message, *_ in extract_from_dir(
        str(ROOT), method_map, options_map, keywords={"_": None, "gettext": None,
                                                     "ngettext": (1, 2), "N_": None})}
    found = {m if isinstance(m, str) else m[0] for m in found if m}
    with Path(CATALOGUE).open("rb") as source:
        catalogue = {m.id: m.string for m in read_po(source, locale="ja") if m.id}
    missing = sorted(m for m in found if not catalogue.get(m))
    assert missing == [], "run scripts/i18n and translate these"
    assert len(found) > 250


async def arrange(db: AsyncSession, staff: Staff, web: httpx.AsyncClient,
                  engine: AsyncEngine) -> dict[str, int]:
    admin = await staff.create("admin", Role.admin, inboxes=["default"])
    other = await staff.create("other", Role.operator, inboxes=["default"])
    await staff.create("locked", Role.operator)
    for attempt in range(5):
        await web.post("/api/auth/token", json={"email": "locked@example.com", "password": f"x{attempt}"})
    mail = await inbound(db, "i1", name="佐藤 花子", email="hanako@example.jp", phone="090-1111-2222",
                         channel=Channel.email, subject="配送について", body="届きません",
                         body_html="<p>届きません</p>")
    await begin_write(db)
    ticket = await db.get(Ticket, mail.ticket_id)
    order = Order(customer_id=ticket.customer_id, number="EC-1", ordered_at=utcnow(), total=Decimal(1200))
    db.add(order)
    await db.flush()
    db.add(OrderItem(order_id=order.id, sku="TEA-001", name="有機煎茶", unit_price=Decimal(1200)))
    db.add(ReplyTemplate(name="挨拶", body="{customer_name}様"))
    db.add(ReplyTemplate(name="私の挨拶", category="挨拶", owner_id=admin.id, body="{operator_name}です"))
    db.add(IpRule(network="127.0.0.0/8", note="社内"))
    await tickets.claim(db, mail.ticket_id, actor=other)
    await db.commit()
    await inbound(db, "i2", name="鈴木 一郎", email="ichiro@example.jp", channel=Channel.line)
    # A phone ticket: its composer offers SMS and a call back instead of a reply.
    call = await inbound(db, "i3", name="佐藤 花子", email=None, phone="090-1111-2222",
                         channel=Channel.phone, body="不在着信")
    # The reports pages show figures folded from these tickets' events.
    await report_tasks.catch_up(event_sessions(engine), ReportCalendar(zone=ZoneInfo("Asia/Tokyo")))
    return {"admin": admin.id, "ticket": mail.ticket_id, "customer": ticket.customer_id,
            "version": ticket.version, "phone_ticket": call.ticket_id, "inbox": ticket.inbox_id}


PAGES = ["/inbox", "/inbox?view=mine&status=in_progress", "/tickets/{ticket}",
         "/tickets/{phone_ticket}", "/customers",
         "/customers?q=佐藤", "/customers/{customer}", "/board", "/calls", "/me", "/admin/users",
         "/admin/inboxes", "/admin/channels", "/admin/templates", "/templates", "/admin/import",
         "/admin/cti", "/admin/access",
         "/admin/audit", "/admin/inboxes/{inbox}/voice", "/tickets/999999", "/me/two-factor",
         "/approvals", "/admin/sla", "/admin/inboxes/{inbox}/routing", "/inbox?sort=due",
         "/reports", "/reports?range=month",
         "/reports?range=custom&from=2026-01-01&to=2026-01-02", "/reports/tickets?metric=resolution",
         "/reports/tickets?metric=first_response", "/settings/signatures"]


@pytest.mark.parametrize("language", ["ja", "en"])
async def test_every_page_is_fully_translated(
        language: str, tabs: Tabs, staff: Staff, db: AsyncSession, web: httpx.AsyncClient,
        engine: AsyncEngine) -> None:
    ids = await arrange(db, staff, web, engine)
    anonymous = await tabs.open(language=language)
    await anonymous.goto("/login")
    await check(anonymous, language, "/login")
    await anonymous.page.fill("input[name=email]", "locked@example.com")
    await anonymous.page.fill("input[name=password]", PASSWORD)
    await anonymous.page.click("form[action='/login'] button.primary")
    await anonymous.page.wait_for_selector("#login-error")
    await check(anonymous, language, "/login locked")

    await begin_write(staff.session)
    admin = (await staff.session.get(type(staff.made[0]), ids["admin"]))
    admin.language = language
    await staff.session.commit()
    tab = await tabs.open(admin)
    for path in PAGES:
        await tab.goto(path.format(**ids))
        await tab.page.wait_for_load_state("networkidle")
        assert await tab.page.get_attribute("html", "lang") == language
        await check(tab, language, path)

    # States that only appear after something happens: a toast, the conflict, the screen pop.
    await tab.goto(f"/tickets/{ids['ticket']}")
    await tab.page.select_option("#status-select", "pending")
    await tab.page.click("#controls button.primary")
    await tab.page.wait_for_selector("#toasts .toast")
    await check(tab, language, "toast")
    other = await inbound(db, "i3", name="佐藤 花子", email="hanako@example.jp", channel=Channel.email,
                          body="追伸です")
    assert other.ticket_id != ids["ticket"]  # email threads by reference only
    await begin_write(db)
    ticket = await db.get(Ticket, ids["ticket"])
    await tickets.reply(db, ticket, body="先に返信", internal=False, actor=staff.made[1])
    await db.commit()
    await tab.page.fill("#reply-body", "後から返信")
    await tab.page.click("#composer button[type=submit]")
    await tab.page.wait_for_selector("#conflict-alert")
    await check(tab, language, "conflict")
    await tab.deliver([{"seq": 999, "type": "call.ringing", "at": utcnow().isoformat(), "data": {
        "call": {"id": 1, "call_id": "c-1", "from": "+819011112222", "state": "ringing",
                 "customer_id": ids["customer"]}}}])
    await expect(tab.page.locator(".pop-card .pop-profile")).to_have_count(1)
    await check(tab, language, "screen pop")
    tab.assert_clean()
