"""The inbox rows as markup: customer text escaped and shown as written, labels translated."""

from datetime import UTC, datetime, timedelta

from helpdesk.tickets.inbox_row_views import ticket_rows
from helpdesk.tickets.models import TicketPublic
from helpdesk.tickets.reads import RowExtras
from helpdesk.web import i18n


def _ticket(**changes: object) -> TicketPublic:
    now = datetime.now(UTC)
    fields: dict[str, object] = {
        "id": 7, "number": 1007, "subject": "返品 <b>&\"'", "status": "unhandled",
        "pending_reason": None, "priority": "normal", "channel": "email", "inbox_id": 1,
        "customer_id": 3, "assignee_id": 2, "tags": ["VIP<1>"], "version": 4,
        "created_at": now - timedelta(hours=3), "updated_at": now - timedelta(minutes=5),
        "first_response_at": None, "last_message_at": None, **changes}
    return TicketPublic.model_validate(fields)


def test_a_row_escapes_customer_text_and_keeps_it_as_written() -> None:
    i18n.activate(i18n.Locale("ja"))
    html = str(ticket_rows([_ticket()], {3: "佐藤 <太郎>"}, {2: "Op & 2"},
                           {7: RowExtras(preview="届きません <x>", preview_inbound=False, unread=True)}))
    assert '<tr class="ticket-row is-unread" data-ticket-id="7" data-version="4"' in html
    assert "返品 &lt;b&gt;&amp;&#34;&#39;</a>" in html
    assert '<span class="tag" translate="no">VIP&lt;1&gt;</span>' in html
    assert '<p class="preview preview-ours" translate="no">届きません &lt;x&gt;</p>' in html
    assert '<td translate="no">佐藤 &lt;太郎&gt;</td>' in html
    assert '<td translate="no">Op &amp; 2</td>' in html
    assert 'aria-label="#1007 を選択"' in html
    assert '<span class="channel channel-email">メール</span>' in html
    assert '<span class="badge status-unhandled">未対応</span>' in html
    assert 'class="unread-dot" title="未読"' in html


def test_a_row_shows_the_deadline_as_the_list_reads_it() -> None:
    i18n.activate(i18n.Locale("en"))
    now = datetime.now(UTC)
    rows = [_ticket(id=1, sla_due_at=now - timedelta(minutes=90)),
            _ticket(id=2, sla_due_at=now + timedelta(hours=2, minutes=30, seconds=20)),
            _ticket(id=3, status="pending", sla_due_at=now, first_response_due_at=now),
            _ticket(id=4, customer_id=None, assignee_id=None, tags=[], subject="", channel="line")]
    html = str(ticket_rows(rows, {}, {}, {}))
    assert '<td class="sla-cell sla-breached">Overdue 1 h 30 min</td>' in html
    assert '<td class="sla-cell sla-ok">Left 2 h 30 min</td>' in html
    assert '<td class="sla-cell sla-paused">Paused</td>' in html
    assert '<td class="sla-cell sla-none">—</td>' in html
    assert 'translate="no">—</a>' in html and '<td translate="no">—</td>' in html
    assert '<span class="channel channel-line">LINE</span>' in html
    assert "is-unread" not in html


def test_dates_read_as_babel_writes_them_in_every_form_and_zone() -> None:
    from babel.dates import format_datetime

    at = datetime(2026, 3, 8, 6, 59, 30, tzinfo=UTC)
    for language in ("ja", "en"):
        for zone in ("Asia/Tokyo", "America/New_York", "Australia/Lord_Howe"):
            i18n.activate(i18n.Locale(language, zone))
            for form in ("short", "medium", "long", "full", "yyyy-MM-dd HH:mm"):
                for value in (at, at + timedelta(days=200, hours=7), at.replace(tzinfo=None)):
                    assert i18n.format_dt(value, form) == format_datetime(
                        value, form, tzinfo=i18n.current().tz, locale=language)
