"""The SLA settings JSON API."""

from fastapi import APIRouter, Request

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin, Supervisor, client_ip
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.sla import service
from helpdesk.sla.models import SlaConfig

router = APIRouter(prefix="/api/admin/sla", tags=["sla"])


@router.get("", response_model=SlaConfig)
async def get_sla(session: ReadSessionDep, _: Supervisor) -> SlaConfig:
    """Business hours, holidays, closed days and the targets per priority (business minutes)."""
    return await service.load_config(session)


@router.put("", response_model=SlaConfig)
async def put_sla(body: SlaConfig, session: SessionDep, admin: Admin, request: Request) -> SlaConfig:
    """Replace the SLA settings (audited); tickets keep the due times they already have."""
    saved = await service.save_config(session, body)
    audit.record(session, action="sla.update", actor_id=admin.id, actor_email=admin.email,
                 target_type="sla_settings", target_id=1,
                 ip=client_ip(request))
    await session.commit()
    return saved
