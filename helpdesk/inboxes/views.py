"""The inboxes admin page: inboxes and who works them."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.audit import service as audit
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import Admin
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, Conflict
from helpdesk.inboxes import service
from helpdesk.inboxes.models import Inbox, InboxMember
from helpdesk.web import templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)


async def _context(session: AsyncSession) -> dict[str, object]:
    members: dict[int, set[int]] = {}
    for inbox_id, user_id in (await session.execute(
            select(col(InboxMember.inbox_id), col(InboxMember.user_id)))).all():
        members.setdefault(inbox_id, set()).add(user_id)
    return {"inboxes": await service.all_inboxes(session), "members": members,
            "users": [u for u in await auth.all_users(session) if u.is_active]}


@router.get("/admin/inboxes")
async def inboxes_page(request: Request, session: ReadSessionDep, admin: Admin) -> Response:
    """Every inbox with its members."""
    return templating.render(request, "admin/inboxes.html", await _context(session), user=admin)


@router.post("/admin/inboxes")
async def create_inbox(
    request: Request, session: SessionDep, admin: Admin, name: Annotated[str, Form(max_length=80)],
    email_address: Annotated[str, Form(max_length=254)] = "",
    phone_number: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Add an inbox."""
    clean = normalize.nfkc(name).strip()
    if not clean:
        raise BadInput("name: required")
    if await session.scalar(select(col(Inbox.id)).where(col(Inbox.name) == clean)) is not None:
        raise Conflict("an inbox with that name exists")
    phone = normalize.phone(phone_number) if phone_number.strip() else None
    if phone_number.strip() and phone is None:
        raise BadInput("phone_number: not a phone number")
    inbox = await service.create_inbox(session, name=clean, phone_number=phone,
                                       email_address=normalize.email(email_address))
    audit.record(session, action="inbox.create", actor_id=admin.id, actor_email=admin.email,
                 target_type="inbox", target_id=inbox.id)
    await session.commit()
    async with fresh_reader(request) as reader:
        context = await _context(reader)
    return templating.render(request, "admin/inboxes.html", context, user=admin, block="inbox_list")


@router.post("/admin/inboxes/{inbox_id}/members")
async def set_members(
    request: Request, session: SessionDep, admin: Admin, inbox_id: int,
    member: Annotated[list[int] | None, Form(max_length=500)] = None,
) -> Response:
    """Make exactly the checked users members of the inbox."""
    await service.inbox_or_404(session, inbox_id)
    await service.set_inbox_members(session, inbox_id=inbox_id, user_ids=set(member or []))
    audit.record(session, action="inbox.members", actor_id=admin.id, actor_email=admin.email,
                 target_type="inbox", target_id=inbox_id, members=sorted(member or []))
    await session.commit()
    async with fresh_reader(request) as reader:
        context = await _context(reader)
    return templating.render(request, "admin/inboxes.html", context, user=admin, block="inbox_list")
