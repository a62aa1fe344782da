"""The signatures page: each operator's own signature, and (for administrators) each inbox's."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin, CurrentUser
from helpdesk.auth.models import Role, User
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import NotFound
from helpdesk.inboxes.models import Inbox
from helpdesk.replies import signatures
from helpdesk.web import templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)
SignatureText = Annotated[str, Form(max_length=signatures.MAX_SIGNATURE)]


async def _page(request: Request, session: AsyncSession, user: User, saved: str | None) -> Response:
    inboxes = (list(await session.scalars(select(Inbox).order_by(col(Inbox.name))))
               if user.role == Role.admin else [])
    assert user.id is not None
    context = {
        "personal": await signatures.text_of(session, signatures.PERSONAL, user.id),
        "inboxes": inboxes, "inbox_signatures": await signatures.inbox_texts(session),
        "variables": signatures.VARIABLES, "saved": saved,
    }
    return templating.render(request, "signatures.html", context, user=user)


@router.get("/settings/signatures")
async def signatures_page(request: Request, session: ReadSessionDep, user: CurrentUser) -> Response:
    """Your own signature, and each inbox's shared one for administrators."""
    return await _page(request, session, user, None)


@router.post("/settings/signatures/personal")
async def save_personal(request: Request, session: SessionDep, user: CurrentUser,
                        body: SignatureText = "") -> Response:
    """Set (or, empty, remove) your own signature."""
    assert user.id is not None
    await signatures.save(session, signatures.PERSONAL, user.id, body)
    await session.commit()
    async with fresh_reader(request) as reader:
        return await _page(request, reader, user, "personal")


@router.post("/settings/signatures/inbox/{inbox_id}")
async def save_inbox(request: Request, session: SessionDep, admin: Admin, inbox_id: int,
                     body: SignatureText = "") -> Response:
    """Set (or, empty, remove) an inbox's shared signature."""
    if await session.get(Inbox, inbox_id) is None:
        raise NotFound("no such inbox")
    await signatures.save(session, signatures.INBOX, inbox_id, body)
    audit.record(session, action="email_signature.update", actor_id=admin.id,
                 actor_email=admin.email, target_type="inbox", target_id=inbox_id)
    await session.commit()
    async with fresh_reader(request) as reader:
        return await _page(request, reader, admin, f"inbox-{inbox_id}")
