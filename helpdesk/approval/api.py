"""Send approval over JSON: per-inbox rules, the queue, approve and reject."""

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import settings_api
from helpdesk.approval import service
from helpdesk.approval.models import ApprovalConfig, ApprovalPage, Rejection
from helpdesk.auth.dependencies import Supervisor
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.inboxes import service as inbox_service
from helpdesk.tickets.models import MessagePublic

router = APIRouter(tags=["approval"])
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "the reply was approved or returned already"}}


async def _known_users(session: AsyncSession, _: int, config: ApprovalConfig) -> None:
    if isinstance(config.required_for, list):
        await inbox_service.existing_users(session, set(config.required_for), "required_for")


SETTINGS = settings_api.Document[ApprovalConfig](
    load=service.load_config, save=service.save_config, check=_known_users,
    action="inbox.approval", target_type="inbox", per_inbox=True)


@router.get("/api/admin/inboxes/{inbox_id}/approval", response_model=ApprovalConfig)
async def get_approval(inbox_id: int, session: ReadSessionDep, _: Supervisor) -> ApprovalConfig:
    """Whose replies in the inbox wait for a supervisor."""
    return await SETTINGS.read(session, inbox_id)


@router.put("/api/admin/inboxes/{inbox_id}/approval", response_model=ApprovalConfig)
async def put_approval(inbox_id: int, body: ApprovalConfig, session: SessionDep, user: Supervisor,
                       request: Request) -> ApprovalConfig:
    """Replace the inbox's approval rule (audited)."""
    return await SETTINGS.replace(session, body, actor=user, request=request, key=inbox_id)


@router.get("/api/approvals", response_model=ApprovalPage)
async def list_approvals(session: ReadSessionDep, _: Supervisor) -> ApprovalPage:
    """Replies waiting for approval, oldest first."""
    return ApprovalPage(items=await service.pending(session))


@router.post("/api/messages/{message_id}/approve", response_model=MessagePublic, responses=CONFLICT)
async def approve(message_id: int, session: SessionDep, user: Supervisor) -> MessagePublic:
    """Approve a held reply: it goes out at once."""
    result = await service.decide(session, message_id, approver=user, approve=True)
    await session.commit()
    return result


@router.post("/api/messages/{message_id}/reject", response_model=MessagePublic, responses=CONFLICT)
async def reject(message_id: int, body: Rejection, session: SessionDep, user: Supervisor) -> MessagePublic:
    """Return a held reply to its author with a comment; nothing is sent."""
    result = await service.decide(session, message_id, approver=user, approve=False, comment=body.comment)
    await session.commit()
    return result
