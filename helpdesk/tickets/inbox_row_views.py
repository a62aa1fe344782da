"""The inbox's ticket rows as one function, rather than a macro per row.

A page shows fifty rows and each row called about thirty Jinja macros, filters and gettext
lookups, each through Jinja's per-call dispatch: the rows cost more than every query of the page
together. Here a row is a handful of string pieces, escaped with markupsafe as the template
escaped them; labels are looked up once per page in the language being rendered.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup, escape

from helpdesk.sla import display as sla_display
from helpdesk.tickets.models import TicketPublic
from helpdesk.tickets.reads import RowExtras
from helpdesk.web import i18n, messages
from helpdesk.web.messages import N_

# Channels as the inbox names them; the rest keep their own (brand) name.
_CHANNEL_MESSAGES = {"email": N_("Email"), "chat": N_("Chat"), "phone": N_("Phone")}
_CHANNEL_BRANDS = {"sms": "SMS", "line": "LINE", "messenger": "Messenger", "instagram": "Instagram",
                   "whatsapp": "WhatsApp", "api": "API"}


@dataclass(frozen=True)
class _Labels:
    """The words of a row in the language of the page being rendered."""

    channels: dict[str, str]
    statuses: dict[str, str]
    select: Markup  # "Select #%(n)s"
    unread: Markup
    overdue: Markup
    left: Markup
    paused: Markup
    minutes: Markup  # "%(n)s min"
    hours: Markup  # "%(h)s h %(m)s min"

    @classmethod
    def current(cls) -> "_Labels":
        # Translations are markup as they stand, as Jinja's gettext treats them; only the values
        # put into them and the ticket's own fields are escaped.
        def gettext(message: str) -> Markup:
            return Markup(i18n.gettext(message))

        return cls(
            channels={**_CHANNEL_BRANDS, **{k: gettext(v) for k, v in _CHANNEL_MESSAGES.items()}},
            statuses={k: i18n.gettext(v) for k, v in messages.STATUS_NAMES.items()},
            select=gettext("Select #%(n)s"), unread=gettext("Unread"), overdue=gettext("Overdue"),
            left=gettext("Left"), paused=gettext("Paused"), minutes=gettext("%(n)s min"),
            hours=gettext("%(h)s h %(m)s min"))


def ticket_rows(
    tickets: Iterable[TicketPublic], customer_names: Mapping[int, str],
    staff_names: Mapping[int, str], extras: Mapping[int, RowExtras],
) -> Markup:
    """The ``<tr>`` of each ticket, in the current render's language and zone."""
    labels = _Labels.current()
    return Markup("").join(_row(t, customer_names, staff_names, extras.get(t.id), labels)
                           for t in tickets)


def _row(t: TicketPublic, customer_names: Mapping[int, str], staff_names: Mapping[int, str],
         x: RowExtras | None, labels: _Labels) -> Markup:
    unread = x is not None and x.unread
    dot = (f'<span class="unread-dot" title="{labels.unread}"><span class="visually-hidden">'
           f'{labels.unread}</span></span>') if unread else ""
    tags = "".join(f'<span class="tag" translate="no">{escape(tag)}</span>' for tag in t.tags)
    preview = ""
    if x is not None and x.preview:
        ours = "" if x.preview_inbound else " preview-ours"
        preview = f'<p class="preview{ours}" translate="no">{escape(x.preview)}</p>'
    channel = str(t.channel)
    status = str(t.status)
    customer = customer_names.get(t.customer_id) if t.customer_id is not None else None
    assignee = staff_names.get(t.assignee_id, "") if t.assignee_id is not None else ""
    return Markup(
        f'<tr class="ticket-row{" is-unread" if unread else ""}" data-ticket-id="{t.id}" '
        f'data-version="{t.version}" tabindex="-1">\n'
        f'  <td class="pick"><input type="checkbox" name="ids" value="{t.id}" form="bulk-form" '
        f'aria-label="{labels.select % {"n": t.number}}"></td>\n'
        f'  <td class="num">{dot}#{t.number}</td>\n'
        f'  <td class="subject"><a href="/tickets/{t.id}" translate="no">{escape(t.subject or "—")}</a>\n'
        f'{tags}{preview}</td>\n'
        f'  <td translate="no">{escape(customer or "—")}</td>\n'
        f'  <td><span class="channel channel-{escape(channel)}">'
        f'{escape(labels.channels.get(channel, channel))}</span></td>\n'
        f'  <td><span class="badge status-{escape(status)}">'
        f'{escape(labels.statuses.get(status, status))}</span></td>\n'
        f'  <td translate="no">{escape(assignee)}</td>\n'
        f'  <td class="age"><time datetime="{_iso(t.created_at)}" '
        f'title="{escape(i18n.format_dt(t.created_at))}">'
        f'{escape(i18n.format_age(t.created_at))}</time></td>\n'
        f'  {_sla_cell(t, labels)}\n'
        f'  <td class="when"><time datetime="{_iso(t.updated_at)}">{escape(i18n.format_dt(t.updated_at))}'
        f'</time></td>\n</tr>')


def _iso(value: datetime) -> Markup:
    return escape(value.isoformat())


def _sla_cell(t: TicketPublic, labels: _Labels) -> str:
    left = sla_display.time_left(t)
    if left.state == "breached":
        text = f"{labels.overdue} {_duration(left.seconds, labels)}"
    elif left.state in ("ok", "near"):
        text = f"{labels.left} {_duration(left.seconds, labels)}"
    elif left.state == "paused":
        text = labels.paused
    else:
        text = "—"
    return f'<td class="sla-cell sla-{escape(left.state)}">{text}</td>'


def _duration(seconds: int | None, labels: _Labels) -> Markup:
    if seconds is None:
        return Markup("—")
    if seconds < 3600:
        return labels.minutes % {"n": round(seconds / 60)}
    return labels.hours % {"h": seconds // 3600, "m": round((seconds % 3600) / 60)}
