"""``GET|PUT /api/admin/inboxes/{id}/assignment``: an inbox's assignment policy."""

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.assignment import service
from helpdesk.assignment.models import AssignmentConfig
from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Supervisor
from helpdesk.auth.models import User
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, NotFound
from helpdesk.inboxes.models import Inbox

router = APIRouter(prefix="/api/admin/inboxes", tags=["assignment"])


async def existing_inbox(session: AsyncSession, inbox_id: int) -> None:
    """404 unless the inbox exists."""
    if await session.get(Inbox, inbox_id) is None:
        raise NotFound("inbox not found")


async def check_users(session: AsyncSession, user_ids: set[int], field: str) -> None:
    """422 unless every id is an existing user."""
    known = set(await session.scalars(select(col(User.id)).where(col(User.id).in_(user_ids))))
    if known != user_ids:
        raise BadInput(f"{field}: no such user {sorted(user_ids - known)[0]}")


@router.get("/{inbox_id}/assignment", response_model=AssignmentConfig)
async def get_assignment(inbox_id: int, session: ReadSessionDep, _: Supervisor) -> AssignmentConfig:
    """How the inbox's tickets are assigned."""
    await existing_inbox(session, inbox_id)
    return await service.load_config(session, inbox_id)


@router.put("/{inbox_id}/assignment", response_model=AssignmentConfig)
async def put_assignment(inbox_id: int, body: AssignmentConfig, session: SessionDep, user: Supervisor,
                         request: Request) -> AssignmentConfig:
    """Replace the inbox's assignment policy (audited)."""
    await existing_inbox(session, inbox_id)
    await check_users(session, {int(k) for k in body.capacity}, "capacity")
    saved = await service.save_config(session, inbox_id, body)
    audit.record(session, action="inbox.assignment", actor_id=user.id, actor_email=user.email,
                 target_type="inbox", target_id=inbox_id, policy=body.policy,
                 ip=request.client.host if request.client else None)
    await session.commit()
    return saved
