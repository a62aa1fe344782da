"""``GET|PUT /api/admin/inboxes/{id}/assignment``: an inbox's assignment policy."""

from fastapi import APIRouter, Request

from helpdesk.assignment import service
from helpdesk.assignment.models import AssignmentConfig
from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Supervisor, client_ip
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.inboxes import service as inbox_service

router = APIRouter(prefix="/api/admin/inboxes", tags=["assignment"])


@router.get("/{inbox_id}/assignment", response_model=AssignmentConfig)
async def get_assignment(inbox_id: int, session: ReadSessionDep, _: Supervisor) -> AssignmentConfig:
    """How the inbox's tickets are assigned."""
    await inbox_service.inbox_or_404(session, inbox_id)
    return await service.load_config(session, inbox_id)


@router.put("/{inbox_id}/assignment", response_model=AssignmentConfig)
async def put_assignment(inbox_id: int, body: AssignmentConfig, session: SessionDep, user: Supervisor,
                         request: Request) -> AssignmentConfig:
    """Replace the inbox's assignment policy (audited)."""
    await inbox_service.inbox_or_404(session, inbox_id)
    await inbox_service.existing_users(session, {int(k) for k in body.capacity}, "capacity")
    saved = await service.save_config(session, inbox_id, body)
    audit.record(session, action="inbox.assignment", actor_id=user.id, actor_email=user.email,
                 target_type="inbox", target_id=inbox_id, policy=body.policy,
                 ip=client_ip(request))
    await session.commit()
    return saved
