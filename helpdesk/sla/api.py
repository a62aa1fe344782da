"""The SLA settings JSON API."""

from fastapi import APIRouter, Request

from helpdesk import settings_api
from helpdesk.auth.dependencies import Admin, Supervisor
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.sla import service
from helpdesk.sla.models import SlaConfig

router = APIRouter(prefix="/api/admin/sla", tags=["sla"])
SETTINGS = settings_api.Document[SlaConfig](
    load=lambda session, _: service.load_config(session),
    save=lambda session, _, config: service.save_config(session, config),
    action="sla.update", target_type="sla_settings")


@router.get("", response_model=SlaConfig)
async def get_sla(session: ReadSessionDep, _: Supervisor) -> SlaConfig:
    """Business hours, holidays, closed days and the targets per priority (business minutes)."""
    return await SETTINGS.read(session)


@router.put("", response_model=SlaConfig)
async def put_sla(body: SlaConfig, session: SessionDep, admin: Admin, request: Request) -> SlaConfig:
    """Replace the SLA settings (audited); tickets keep the due times they already have."""
    return await SETTINGS.replace(session, body, actor=admin, request=request)
