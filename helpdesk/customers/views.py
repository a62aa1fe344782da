"""Customer search, the customer page with order history, and the screen-pop card."""

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import CurrentUser, Supervisor, client_ip
from helpdesk.auth.models import User
from helpdesk.calls.recent import recent_calls
from helpdesk.config import SettingsDep
from helpdesk.customers import details, service
from helpdesk.customers import merging as customer_merging
from helpdesk.customers.models import Customer
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, NotFound
from helpdesk.inboxes import service as inbox_service
from helpdesk.profiles import service as profiles
from helpdesk.tickets import outbound, spam
from helpdesk.tickets import queries as ticket_queries
from helpdesk.tickets.models import Channel
from helpdesk.web import templating

router = APIRouter(include_in_schema=False)
Short = Annotated[str, Query(max_length=200)]


@router.get("/customers")
async def search(
    request: Request, session: ReadSessionDep, user: CurrentUser, settings: SettingsDep, q: Short = "",
) -> Response:
    """Find customers by name, kana, email, phone in any format, or order number."""
    text = q.strip()
    found = []
    if text:
        found = await service.find(session, q=text, region=settings.default_region, limit=50)
    return templating.render(request, "customers.html", {"q": text, "customers": found}, user=user)


@router.get("/customers/{customer_id}")
async def customer_page(
    request: Request, customer_id: int, reader: ReadSessionDep, session: SessionDep,
    user: CurrentUser, settings: SettingsDep, merge_q: Short = "",
) -> Response:
    """A customer's profile, purchase history, tickets and calls; the view is audited.

    ``merge_q`` (supervisors) lists other customers to fold into this one."""
    profile = await profiles.profile(reader, customer_id, viewer=user, recent_calls=recent_calls,
                                     dormant_after_days=settings.dormant_after_days)
    if profile is None:
        raise NotFound("customer not found")
    history, _ = await ticket_queries.list_tickets(
        reader, user, ticket_queries.TicketFilter(customer_id=customer_id), cursor=None, limit=50)
    context = {"profile": profile, "tickets": history, "staff_names": await auth.names(reader),
               "customer": await reader.get(Customer, customer_id),
               "reachable": await outbound.reachable_channels(reader, customer_id),
               "merge_q": merge_q.strip(), "merge_candidates": [
                   c for c in await service.find(reader, q=merge_q.strip(),
                                                 region=settings.default_region, limit=10)
                   if c.id != customer_id] if merge_q.strip() and user.sees_everything else [],
               "inboxes": await inbox_service.inboxes_by_id(
                   reader, await inbox_service.visible_inbox_ids(reader, user))}
    await audit_view(session, request, user, customer_id, via="page")
    return templating.render(request, "customer.html", context, user=user)


async def audit_view(session: AsyncSession, request: Request, user: User, customer_id: int,
                     *, via: str) -> None:
    """Record that ``user`` saw the customer's profile, and commit.

    Only the audit row goes through the write session: the write lock is held for one insert.
    """
    audit.record(session, action="customer.view", actor_id=user.id, actor_email=user.email,
                 target_type="customer", target_id=customer_id,
                 ip=client_ip(request), via=via)
    await session.commit()


@router.post("/customers/{customer_id}/details")
async def edit_details(
    request: Request, customer_id: int, reader: ReadSessionDep, session: SessionDep,
    user: CurrentUser, settings: SettingsDep, name: Annotated[str, Form(max_length=200)] = "",
    name_kana: Annotated[str, Form(max_length=200)] = "",
    note: Annotated[str, Form(max_length=details.NOTE_MAX)] = "",
) -> Response:
    """Change the name, the reading and the note of a customer the user may see."""
    if await profiles.profile(reader, customer_id, viewer=user, recent_calls=recent_calls,
                              dormant_after_days=settings.dormant_after_days) is None:
        raise NotFound("customer not found")
    await details.update(session, customer_id, name=name, name_kana=name_kana, note=note,
                         region=settings.default_region)
    audit.record(session, action="customer.update", actor_id=user.id, actor_email=user.email,
                 target_type="customer", target_id=customer_id)
    await session.commit()
    return templating.redirect(request, f"/customers/{customer_id}")


@router.post("/customers/{customer_id}/message")
async def new_message(
    request: Request, customer_id: int, reader: ReadSessionDep, session: SessionDep,
    user: CurrentUser, settings: SettingsDep, channel: Annotated[str, Form(max_length=20)],
    inbox_id: Annotated[int, Form()], body: Annotated[str, Form(max_length=100_000)],
    subject: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    """Start a conversation with the customer: a new ticket, our message sent on ``channel``."""
    if await profiles.profile(reader, customer_id, viewer=user, recent_calls=recent_calls,
                              dormant_after_days=settings.dormant_after_days) is None:
        raise NotFound("customer not found")
    try:
        chosen = Channel(channel)
    except ValueError:
        raise BadInput("a control has a value that is not offered") from None
    ticket = await outbound.start(session, customer_id=customer_id, inbox_id=inbox_id,
                                  channel=chosen, subject=subject, body=body, actor=user)
    await session.commit()
    return templating.redirect(request, f"/tickets/{ticket.id}")


@router.post("/customers/{customer_id}/merge")
async def merge_from_page(
    request: Request, customer_id: int, session: SessionDep, user: Supervisor,
    settings: SettingsDep, other_id: Annotated[int, Form()],
) -> Response:
    """Fold a duplicate into this customer (supervisors), as the API's merge does."""
    moved = await customer_merging.merge(session, customer_id, other_id, region=settings.default_region,
                                dormant_after_days=settings.dormant_after_days)
    audit.record(session, action="customer.merge", actor_id=user.id, actor_email=user.email,
                 target_type="customer", target_id=customer_id,
                 ip=client_ip(request), merged_id=other_id,
                 moved=moved)
    await session.commit()
    return templating.redirect(request, f"/customers/{customer_id}")


@router.post("/customers/{customer_id}/block")
async def block_sender(
    request: Request, customer_id: int, reader: ReadSessionDep, session: SessionDep,
    user: CurrentUser, settings: SettingsDep, blocked: Annotated[bool, Form()],
) -> Response:
    """Block the customer as spam (their open tickets filed as 対応不要), or unblock them."""
    if await profiles.profile(reader, customer_id, viewer=user, recent_calls=recent_calls,
                              dormant_after_days=settings.dormant_after_days) is None:
        raise NotFound("customer not found")
    if blocked:
        await spam.block(session, customer_id, actor=user)
    else:
        await spam.unblock(session, customer_id)
    audit.record(session, action="customer.block" if blocked else "customer.unblock",
                 actor_id=user.id, actor_email=user.email, target_type="customer",
                 target_id=customer_id)
    await session.commit()
    return templating.redirect(request, f"/customers/{customer_id}")


@router.get("/phone/card")
async def screen_pop_card(
    request: Request, reader: ReadSessionDep, session: SessionDep, user: CurrentUser,
    settings: SettingsDep, customer_id: Annotated[int | None, Query()] = None, number: Short = "",
) -> Response:
    """The incoming-call card's body: the caller's profile and latest orders, or "new customer".

    A profile shown is audited like the customer page.
    """
    profile = None
    if customer_id is None and number.strip():
        matches = await service.find(reader, phone=number, region=settings.default_region, limit=1)
        customer_id = matches[0].id if matches else None
    if customer_id is not None:
        profile = await profiles.profile(reader, customer_id, viewer=user, recent_calls=recent_calls,
                                         dormant_after_days=settings.dormant_after_days)
    if profile is not None:
        await audit_view(session, request, user, profile.id, via="phone_card")
    return templating.render(request, "screen_pop.html", {"profile": profile, "number": number},
                             user=user, block="card")
