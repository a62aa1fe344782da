"""The ticket page, and what operators do on it."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.approval import service as approval
from helpdesk.audit import service as audit
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import CurrentUser, client_ip
from helpdesk.auth.models import User
from helpdesk.calls import api as calls_api
from helpdesk.calls.recent import recent_calls
from helpdesk.channels.email import composer as email_composer
from helpdesk.channels.email import outgoing
from helpdesk.config import SettingsDep
from helpdesk.customers import service as customers
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, Conflict, NotFound
from helpdesk.history import service as history
from helpdesk.inboxes import service as inbox_service
from helpdesk.inboxes.models import Inbox
from helpdesk.outbox.dependencies import senders
from helpdesk.profiles import service as profiles
from helpdesk.replies import service as replies
from helpdesk.tickets import delivery, macros, mentions, merging, queries, reads, service
from helpdesk.tickets.dependencies import CurrentTicket
from helpdesk.tickets.models import (
    Channel,
    Direction,
    Message,
    Priority,
    Status,
    Ticket,
    TicketUpdate,
)
from helpdesk.web import i18n, templating
from helpdesk.web.forms import form_id
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)


async def _assignable(session: AsyncSession, ticket: Ticket, user: User) -> list[User]:
    """The assignee menu: the inbox's active members ``user`` may choose among."""
    members = await inbox_service.memberships(session)
    return service.assignable_by(user, ticket, [
        u for u in await auth.all_users(session) if u.is_active and (
            u.sees_everything or ticket.inbox_id in members.get(u.id or 0, set()))])


async def _ticket_context(
    session: AsyncSession, ticket: Ticket, user: User, settings: SettingsDep,
    request: Request,
) -> dict[str, Any]:
    detail = await queries.detail(session, ticket)
    profile = None
    if ticket.customer_id is not None:
        profile = await profiles.profile(session, ticket.customer_id, viewer=user,
                                         recent_calls=recent_calls,
                                         dormant_after_days=settings.dormant_after_days)
    inbox = await session.get(Inbox, ticket.inbox_id)
    assert ticket.id is not None and user.id is not None
    return {
        # Approval and history (helpdesk/approval, helpdesk/history): the approval notes and
        # history blocks of the ticket page.
        "approval_pending": any(m.approval_status == "pending" for m in detail.messages),
        "returned": await approval.returned_to(session, ticket_id=ticket.id, author_id=user.id),
        "history": await history.of_ticket(session, ticket.id),
        "ticket": detail, "profile": profile, "inbox": inbox,
        "assignable": await _assignable(session, ticket, user),
        "holder_fixed": service.holder_fixed_for(user, ticket),
        "staff_names": await auth.names(session),
        "template_groups": replies.grouped(await replies.visible(session, user)),
        "priorities": list(Priority), "seen_message_id": max((m.id for m in detail.messages), default=0),
        "composer_version": detail.version, "new_since": None, "draft": "", "conflict": False,
        **_composer(request, ticket, profile),
        **await email_composer.context(session, ticket, user, inbox, settings),
    }


def _composer(request: Request, ticket: Ticket, profile: Any) -> dict[str, Any]:
    """What the composer can do here: why replies cannot be sent, and a phone ticket's options."""
    registry = senders(request)
    phone = ticket.channel == Channel.phone
    return {
        "send_refusal": delivery.refusal(registry, Channel.sms if phone else ticket.channel),
        "reply_channel": Channel.sms if phone else ticket.channel,
        "call_back_to": (profile.phones[0] if phone and profile and profile.phones
                         and getattr(request.app.state, "dialer", None) else None),
    }


@router.get("/tickets/{ticket_id}")
async def ticket_page(
    request: Request, ticket: CurrentTicket, session: ReadSessionDep, writer: SessionDep,
    user: CurrentUser,
    settings: SettingsDep, new_since: Annotated[int | None, Query(ge=0)] = None,
) -> Response:
    """The whole thread, the composer, the controls and the customer panel.

    ``new_since`` (a message id) highlights what arrived after it when the thread is refreshed live.
    """
    context = {**await _ticket_context(session, ticket, user, settings, request), "new_since": new_since}
    if context["profile"] is not None:  # the customer panel shows the profile: audited
        audit.record(writer, action="customer.view", actor_id=user.id, actor_email=user.email,
                     target_type="customer", target_id=context["profile"].id,
                     ip=client_ip(request), via="ticket")
        await writer.commit()
    await _mark_read(session, writer, user, context["ticket"])
    return templating.render(request, "ticket.html", context, user=user)


async def _mark_read(reader: AsyncSession, writer: AsyncSession, user: User, ticket: Any) -> None:
    """The customer messages on the page are read by this user: a write only when there is news."""
    newest = max((m.id for m in ticket.messages if m.direction == Direction.inbound), default=0)
    assert user.id is not None
    if newest <= await reads.seen_up_to(reader, user.id, ticket.id):
        return
    await reads.mark_read(writer, user_id=user.id, ticket_id=ticket.id, message_id=newest)
    await writer.commit()


def _change_from_form(ticket: Ticket, tags_now: list[str], form: "ControlsForm") -> TicketUpdate:
    """Only what the form actually changes, so the audit log and events say what happened."""
    values: dict[str, Any] = {"version": form.version}
    status = Status(form.status) if form.status else ticket.status
    reason = form.pending_reason.strip() or None
    if status != ticket.status or (status == Status.pending and reason != ticket.pending_reason):
        values.update(status=status, pending_reason=reason)
    assignee = int(form.assignee_id) if form.assignee_id else None
    if assignee != ticket.assignee_id:
        values["assignee_id"] = assignee
    if form.priority and Priority(form.priority) != ticket.priority:
        values["priority"] = Priority(form.priority)
    tags = sorted({t.strip() for t in form.tags.replace("、", ",").split(",") if t.strip()})
    if tags != sorted(tags_now):
        values["tags"] = tags
    return TicketUpdate.model_validate(values)


@dataclass
class ControlsForm:
    version: int
    composer_version: int | None
    status: str
    pending_reason: str
    assignee_id: str
    priority: str
    tags: str


@router.post("/tickets/{ticket_id}/update")
async def update_ticket(
    request: Request, ticket: CurrentTicket, session: SessionDep, reader: ReadSessionDep,
    user: CurrentUser, settings: SettingsDep, version: Annotated[int, Form()],
    composer_version: Annotated[int | None, Form()] = None,
    status: Annotated[str, Form(max_length=20)] = "",
    pending_reason: Annotated[str, Form(max_length=300)] = "",
    assignee_id: Annotated[str, Form(max_length=20)] = "",
    priority: Annotated[str, Form(max_length=10)] = "",
    tags: Annotated[str, Form(max_length=3000)] = "",
) -> Response:
    """Status, assignee, priority, tags; a stale version shows the current state instead."""
    form = ControlsForm(version, composer_version, status, pending_reason, assignee_id, priority, tags)
    assert ticket.id is not None
    try:
        change = _change_from_form(ticket, (await queries.tags_of(reader, [ticket.id]))[ticket.id],
                                   form)
    except ValueError:
        raise BadInput("a control has a value that is not offered") from None
    try:
        locked = await service.lock_for_change(session, ticket.id, change.version)
    except Conflict:
        await session.rollback()  # let go of the write lock before rendering
        async with fresh_reader(request) as reader:
            current = await _reload(reader, ticket.id)
            context = {**await _ticket_context(reader, current, user, settings, request),
                       "stale_controls": True}
        return templating.render(request, "ticket.html", context, user=user, block="controls",
                                 status=409)
    refused = None
    if "assignee_id" in change.model_fields_set:
        refused = await service.assignment_refusal(session, locked, change.assignee_id, user)
        if refused is not None:  # the rest of the form is saved all the same
            change = TicketUpdate.model_validate(change.model_dump(exclude_unset=True,
                                                                   exclude={"assignee_id"}))
    if change.model_fields_set - {"version"}:
        await service.update(session, locked, change, actor=user)
        await session.commit()
    return await _after_own_change(request, ticket.id, user, settings, form.version,
                                   form.composer_version, refused=refused)


async def _reload(reader: AsyncSession, ticket_id: int) -> Ticket:
    ticket = await reader.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket


async def _after_own_change(
    request: Request, ticket_id: int, user: User, settings: SettingsDep,
    old_version: int, composer_version: int | None, *, refused: str | None = None,
) -> Response:
    """The new controls; the composer's version follows when nothing else happened meanwhile.

    ``refused`` says why the assignee change (and only it) was not saved.
    """
    async with fresh_reader(request) as reader:
        context = {**await _ticket_context(reader, await _reload(reader, ticket_id), user, settings,
                                           request),
                   "refused": refused}
    oob = ["composer_version"] if composer_version == old_version else []
    return templating.render(request, "ticket.html", context, user=user, block="controls", oob=oob)


@router.post("/tickets/{ticket_id}/claim")
async def claim_ticket(
    request: Request, ticket: CurrentTicket, session: SessionDep, user: CurrentUser,
    settings: SettingsDep, composer_version: Annotated[int | None, Form()] = None,
) -> Response:
    """Take the ticket; 409 (shown as a toast) when someone else holds it."""
    assert ticket.id is not None
    old_version = ticket.version
    await service.claim(session, ticket.id, actor=user)
    await session.commit()
    return await _after_own_change(request, ticket.id, user, settings, old_version,
                                   composer_version)


@router.post("/tickets/{ticket_id}/reply")
async def reply(
    request: Request, ticket: CurrentTicket, session: SessionDep, user: CurrentUser,
    settings: SettingsDep, body: Annotated[str, Form(max_length=100_000)],
    composer_version: Annotated[int, Form()], seen_message_id: Annotated[int, Form()] = 0,
    internal: Annotated[bool, Form()] = False, channel: Annotated[str, Form(max_length=20)] = "",
    macro_id: Annotated[int | None, Form()] = None,
    cc: Annotated[str, Form(max_length=2000)] = "", bcc: Annotated[str, Form(max_length=2000)] = "",
    signature: Annotated[bool, Form()] = False, files: Annotated[list[UploadFile], File()] = [],  # noqa: B006
) -> Response:
    """Send a reply or add a note; if the ticket moved on, nothing is sent and the news is shown.

    ``macro_id`` (a template inserted into the reply) also sets its status and tags."""
    if not body.strip():
        raise BadInput("write something before sending")
    body = body.replace("\r\n", "\n")  # a multipart form (the composer's, for files) sends CRLF
    assert ticket.id is not None
    try:
        reply_channel = delivery.reply_channel(ticket, Channel(channel) if channel else None)
    except ValueError:
        raise BadInput("channel: not a channel") from None
    if not internal:
        delivery.ensure_sendable(senders(request), reply_channel)
    by_email = not internal and reply_channel == Channel.email
    extras = await email_composer.reply_extras(cc=cc, bcc=bcc, files=files, settings=settings,
                                               by_email=by_email)
    try:
        locked = await service.lock_for_change(session, ticket.id, composer_version)
    except Conflict:
        await session.rollback()  # let go of the write lock before rendering
        async with fresh_reader(request) as reader:
            current = await _reload(reader, ticket.id)
            context = {**await _ticket_context(reader, current, user, settings, request), "conflict": True,
                       "draft": body, "internal": internal, "new_since": seen_message_id,
                       **email_composer.kept_on_conflict(cc, bcc, extras)}
        return templating.render(request, "ticket.html", context, user=user, block="composer",
                                 oob=["thread", "controls"], status=409)
    macro = await replies.usable(session, macro_id, user) if macro_id is not None else None
    hold = await approval.needs_approval(session, inbox_id=locked.inbox_id, author=user)
    if by_email and signature:
        body = await email_composer.signed(session, body, user=user, ticket=locked)
    sent = await service.reply(session, locked, body=body, internal=internal, actor=user,
                               channel=reply_channel, hold=hold)
    await outgoing.store(session, sent.id, extras)
    if macro is not None and not internal:
        await macros.apply(session, locked, macro, actor=user)
    if internal:
        await mentions.notify(session, locked, body=body, message_id=sent.id, actor=user)
    await session.commit()
    async with fresh_reader(request) as reader:
        context = {**await _ticket_context(reader, await _reload(reader, ticket.id), user, settings,
                                           request),
                   "sent": "note" if internal else "held" if hold else "reply",
                   "macro_applied": macro.name if macro is not None and not internal else None}
    return templating.render(request, "ticket.html", context, user=user, block="composer",
                             oob=["thread", "controls"])


@router.post("/tickets/{ticket_id}/messages/{message_id}/retry")
async def retry_message(
    request: Request, ticket: CurrentTicket, message_id: int, session: SessionDep,
    user: CurrentUser, settings: SettingsDep,
) -> Response:
    """Send a failed reply again; the thread shows it queued."""
    assert ticket.id is not None
    await delivery.retry(session, ticket, message_id, registry=senders(request))
    await session.commit()
    async with fresh_reader(request) as reader:
        context = await _ticket_context(reader, await _reload(reader, ticket.id), user, settings,
                                        request)
    return templating.render(request, "ticket.html", context, user=user, block="thread")


@router.post("/tickets/{ticket_id}/call-back")
async def call_back(
    request: Request, ticket: CurrentTicket, session: SessionDep, user: CurrentUser,
    settings: SettingsDep, to: Annotated[str, Form(max_length=40)],
) -> Response:
    """Click-to-call the customer from a phone ticket (rings the operator's browser phone first)."""
    call = await calls_api.place_call(request, session, user=user, to=to,
                                      customer_id=ticket.customer_id, settings=settings,
                                      ticket_id=ticket.id)
    return templating.render(request, "ticket.html", {"ticket": ticket, "calling": call.to_number},
                             user=user, block="call_back")
@router.get("/tickets/{ticket_id}/returned/{message_id}")
async def returned_draft(request: Request, ticket: CurrentTicket, message_id: int,
                         session: ReadSessionDep, user: CurrentUser) -> Response:
    """A reply a supervisor returned, put back in its author's composer to edit and send again."""
    message = await session.get(Message, message_id)
    if message is None or message.ticket_id != ticket.id or message.author_user_id != user.id:
        raise NotFound("no such returned reply")
    return templating.render(request, "ticket.html", {"draft": message.body_text}, user=user,
                             block="reply_body")
@router.post("/tickets/{ticket_id}/merge")
async def merge_ticket(
    request: Request, ticket: CurrentTicket, session: SessionDep, user: CurrentUser,
    other_id: Annotated[int, Form()],
) -> Response:
    """Fold another ticket of the same customer into this one (its messages move here)."""
    assert ticket.id is not None
    other = await session.get(Ticket, other_id)
    if other is None:
        raise NotFound("ticket not found")
    i18n.activate(templating.locale_for(request, user))
    notes = (i18n.gettext("Ticket #%(number)s was merged into this one.") % {"number": other.number},
             i18n.gettext("Merged into #%(number)s.") % {"number": ticket.number})
    await merging.merge(session, ticket.id, other_id, actor=user, notes=notes)
    await session.commit()
    return templating.redirect(request, f"/tickets/{ticket.id}")


@router.get("/tickets/{ticket_id}/template")
async def insert_template(
    request: Request, ticket: CurrentTicket, session: ReadSessionDep, user: CurrentUser,
    template_id: Annotated[str, Query(max_length=20)] = "",
    body: Annotated[str, Query(max_length=100_000)] = "",
) -> Response:
    """The composer's text with a reply template filled in for this ticket's customer."""
    text, macro = body, None
    if template_id:
        template = await replies.usable(session, form_id(template_id), user)
        filled = replies.fill(template.body, await _variables(session, ticket, user))
        text = f"{body.rstrip()}\n\n{filled}" if body.strip() else filled
        macro = template if macros.is_macro(template) else None
    return templating.render(request, "ticket.html", {"draft": text, "macro": macro}, user=user,
                             block="reply_body", oob=["macro_note"])


async def _variables(session: AsyncSession, ticket: Ticket, user: User) -> dict[str, str]:
    values = {"ticket_number": str(ticket.number), "operator_name": user.name,
              "customer_name": "", "last_order_number": "", "last_order_date": "",
              "last_order_total": ""}
    if ticket.customer_id is not None:
        names = await customers.names(session, [ticket.customer_id])
        values["customer_name"] = names.get(ticket.customer_id) or ""
        orders = await profiles.recent_orders(session, ticket.customer_id)
        if orders:
            values.update(last_order_number=orders[0].number,
                          last_order_date=i18n.format_day(orders[0].ordered_at),
                          last_order_total=i18n.format_money(orders[0].total, orders[0].currency))
    return values
