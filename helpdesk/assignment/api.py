"""``GET|PUT /api/admin/inboxes/{id}/assignment``: an inbox's assignment policy."""

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import settings_api
from helpdesk.assignment import service
from helpdesk.assignment.models import AssignmentConfig
from helpdesk.auth.dependencies import Supervisor
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.inboxes import service as inbox_service

router = APIRouter(prefix="/api/admin/inboxes", tags=["assignment"])


async def _known_users(session: AsyncSession, _: int, config: AssignmentConfig) -> None:
    await inbox_service.existing_users(session, {int(k) for k in config.capacity}, "capacity")


SETTINGS = settings_api.Document[AssignmentConfig](
    load=service.load_config, save=service.save_config, check=_known_users,
    detail=lambda config: {"policy": config.policy},
    action="inbox.assignment", target_type="inbox", per_inbox=True)


@router.get("/{inbox_id}/assignment", response_model=AssignmentConfig)
async def get_assignment(inbox_id: int, session: ReadSessionDep, _: Supervisor) -> AssignmentConfig:
    """How the inbox's tickets are assigned."""
    return await SETTINGS.read(session, inbox_id)


@router.put("/{inbox_id}/assignment", response_model=AssignmentConfig)
async def put_assignment(inbox_id: int, body: AssignmentConfig, session: SessionDep, user: Supervisor,
                         request: Request) -> AssignmentConfig:
    """Replace the inbox's assignment policy (audited, with the policy's name)."""
    return await SETTINGS.replace(session, body, actor=user, request=request, key=inbox_id)
