"""The approval queue page: supervisors approve held replies or return them with a comment."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.approval import service
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import Supervisor
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput
from helpdesk.web import templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)


async def _context(session: AsyncSession) -> dict[str, object]:
    return {"items": await service.pending(session), "staff_names": await auth.names(session)}


@router.get("/approvals")
async def approvals_page(request: Request, session: ReadSessionDep, user: Supervisor) -> Response:
    """Replies waiting for approval, oldest first; follows the socket."""
    return templating.render(request, "approvals.html", await _context(session), user=user)


@router.post("/approvals/{message_id}/approve")
async def approve(request: Request, message_id: int, session: SessionDep, user: Supervisor) -> Response:
    """Send the reply now."""
    await service.decide(session, message_id, approver=user, approve=True)
    await session.commit()
    return await _queue(request, user)


@router.post("/approvals/{message_id}/reject")
async def reject(request: Request, message_id: int, session: SessionDep, user: Supervisor,
                 comment: Annotated[str, Form(max_length=5000)] = "") -> Response:
    """Return the reply to its author with a comment."""
    if not comment.strip():
        raise BadInput("comment: say what to change before returning the reply")
    await service.decide(session, message_id, approver=user, approve=False, comment=comment.strip())
    await session.commit()
    return await _queue(request, user)


async def _queue(request: Request, user: object) -> Response:
    async with fresh_reader(request) as reader:
        context = await _context(reader)
    return templating.render(request, "approvals.html", context, user=user,  # type: ignore[arg-type]
                             block="approval_queue")
