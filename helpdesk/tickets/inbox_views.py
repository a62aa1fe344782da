"""The inbox page: filtered, sorted ticket lists, saved views and bulk changes."""

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import CurrentUser
from helpdesk.auth.models import User
from helpdesk.config import SettingsDep
from helpdesk.customers import service as customers
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets import bulk, counts, queries, reads, saved
from helpdesk.tickets.inbox_row_views import ticket_rows
from helpdesk.tickets.models import Channel, Status
from helpdesk.web import templating
from helpdesk.web.forms import form_id
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50
Short = Annotated[str, Query(max_length=200)]
VIEWS = ("all", "mine", "unassigned")


@dataclass(frozen=True)
class InboxQuery:
    """The inbox page's filters, parsed leniently from a form where empty means "any".

    A search looks in every status (``status`` None) unless a tab narrows it afterwards.
    """

    status: Status | None
    view: str
    inbox_id: int | None
    channel: Channel | None
    tag: str
    q: str
    sort: str = "activity"  # or "due": soonest SLA deadline first

    def params(self, **changes: object) -> str:
        """The query string of this view with ``changes`` applied."""
        values: dict[str, object] = {"status": self.status.value if self.status else "",
                                     "view": self.view,
                                     "inbox_id": self.inbox_id or "",
                                     "channel": self.channel.value if self.channel else "",
                                     "tag": self.tag, "q": self.q,
                                     "sort": "" if self.sort == "activity" else self.sort, **changes}
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _parse_query(status: str, view: str, inbox_id: str, channel: str, tag: str, q: str,
                 searched: str | None = None, sort: str = "") -> InboxQuery:
    """``searched`` is the search the filter form showed: a new search leaves the tab behind."""
    q = q.strip()
    new_search = bool(q) and searched is not None and q != searched.strip()
    try:
        if status and not new_search:
            tab: Status | None = Status(status)
        else:
            tab = None if q else Status.unhandled
        return InboxQuery(
            status=tab, view=view if view in VIEWS else "all",
            inbox_id=int(inbox_id) if inbox_id else None,
            channel=Channel(channel) if channel else None, tag=tag.strip(), q=q,
            sort="due" if sort == "due" else "activity")
    except ValueError:
        raise BadInput("filter: not a valid value") from None


async def _inbox_context(
    session: AsyncSession, user: User, query: InboxQuery, cursor: str | None, region: str
) -> dict[str, Any]:
    assert user.id is not None
    assignee = {"mine": "me", "unassigned": "none"}.get(query.view)
    filters = queries.TicketFilter(status=query.status, assignee=assignee, channel=query.channel,
                                   tag=query.tag or None, q=query.q or None, inbox_id=query.inbox_id,
                                   sort=query.sort)
    items, next_cursor = await queries.list_tickets(session, user, filters, cursor=cursor,
                                                    limit=PAGE_SIZE, region=region)
    visible = await inbox_service.visible_inbox_ids(session, user)
    inboxes = await inbox_service.inboxes_by_id(session, visible)
    scope = [i.id for i in inboxes if i.id is not None and query.inbox_id in (None, i.id)]
    owner = {"mine": user.id, "unassigned": counts.NOBODY}.get(query.view)
    return {
        "query": query, "tickets": items, "next_cursor": next_cursor, "inboxes": inboxes,
        "counts": await counts.by_status(session, inbox_ids=scope, assignee_id=owner),
        "customer_names": await customers.names(session, [t.customer_id for t in items if t.customer_id]),
        "row_extras": await reads.row_extras(session, user.id, [t.id for t in items]),
        "ticket_rows": ticket_rows,
        "staff_names": await auth.names(session), "channels": list(Channel), "views": VIEWS,
        "bulk_assignees": [u for u in await auth.all_users(session) if u.is_active]
        if user.sees_everything else [user],
        "saved_views": await saved.of_user(session, user.id),
    }


@router.get("/")
async def home(request: Request, user: CurrentUser) -> Response:
    """The inbox is the start page."""
    return templating.redirect(request, "/inbox")


@router.get("/inbox")
async def inbox(
    request: Request, session: ReadSessionDep, user: CurrentUser, settings: SettingsDep,
    status: Short = "", view: Short = "", inbox_id: Short = "", channel: Short = "",
    tag: Short = "", q: Short = "", cursor: Short = "", sort: Short = "",
    searched: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """Tickets by status tab, with live counts, filters, search and keyset pagination."""
    query = _parse_query(status, view, inbox_id, channel, tag, q, searched, sort)
    context = await _inbox_context(session, user, query, cursor or None, settings.default_region)
    if cursor:
        return templating.render(request, "inbox.html", context, user=user, block="rows")
    target = request.headers.get("hx-target")
    # Filters submit every field; the address bar gets the canonical, shorter form.
    headers = {"HX-Push-Url": f"/inbox?{query.params()}"} if target == "inbox-main" else {}
    return templating.render(request, "inbox.html", context, user=user, headers=headers,
                             oob=["counts"] if target == "ticket-list" else ())


@router.post("/inbox/bulk")
async def bulk_change(
    request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep,
    ids: Annotated[list[int], Form(max_length=bulk.MAX_TICKETS)],
    back: Annotated[str, Form(max_length=1000)] = "",
    status: Annotated[str, Form(max_length=20)] = "",
    pending_reason: Annotated[str, Form(max_length=300)] = "",
    assignee: Annotated[str, Form(max_length=20)] = bulk.KEEP,
    add_tags: Annotated[str, Form(max_length=600)] = "",
    remove_tags: Annotated[str, Form(max_length=600)] = "",
) -> Response:
    """Status, assignee and tags of the selected tickets; the inbox comes back with the outcome."""
    change = bulk.BulkChange(
        status=_status_or_none(status), pending_reason=pending_reason or None,
        assignee=_bulk_assignee(assignee, user), add_tags=_tag_list(add_tags),
        remove_tags=_tag_list(remove_tags))
    outcome = await bulk.apply(session, ids, change, actor=user)
    await session.commit()
    return await _inbox_again(request, user, settings, back, bulk_outcome=outcome)


async def _inbox_again(request: Request, user: User, settings: SettingsDep, back: str,
                       **extra: object) -> Response:
    """The inbox view ``back`` (a query string) after a change made from it."""
    values = parse_qs(back)
    query = _parse_query(*(values.get(k, [""])[0] for k in saved.FIELDS))
    async with fresh_reader(request) as reader:
        context = await _inbox_context(reader, user, query, None, settings.default_region)
    return templating.render(request, "inbox.html", {**context, **extra}, user=user,
                             block="inbox_main")


@router.post("/inbox/views")
async def save_view(
    request: Request, session: SessionDep, user: CurrentUser, settings: SettingsDep,
    name: Annotated[str, Form(max_length=60)], back: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Keep the current filters under a name of the user's choosing."""
    assert user.id is not None
    await saved.save(session, user_id=user.id, name=name, query=back)
    await session.commit()
    return await _inbox_again(request, user, settings, back)


@router.post("/inbox/views/{view_id}/delete")
async def delete_view(
    request: Request, view_id: int, session: SessionDep, user: CurrentUser, settings: SettingsDep,
    back: Annotated[str, Form(max_length=1000)] = "",
) -> Response:
    """Forget one of the user's saved views."""
    assert user.id is not None
    await saved.remove(session, user_id=user.id, view_id=view_id)
    await session.commit()
    return await _inbox_again(request, user, settings, back)


def _status_or_none(value: str) -> Status | None:
    try:
        return Status(value) if value else None
    except ValueError:
        raise BadInput("a control has a value that is not offered") from None


def _bulk_assignee(value: str, user: User) -> int | str | None:
    if value in ("", bulk.KEEP):
        return bulk.KEEP
    if value == "none":
        return None
    return user.id if value == "me" else form_id(value)


def _tag_list(value: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in value.replace("、", ",").split(",") if t.strip())
