"""The audit log page."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from helpdesk.audit import service
from helpdesk.auth.dependencies import Admin
from helpdesk.db import ReadSessionDep
from helpdesk.web import templating

router = APIRouter(include_in_schema=False)


@router.get("/admin/audit")
async def audit_page(
    request: Request, session: ReadSessionDep, admin: Admin,
    before: Annotated[int | None, Query(ge=1)] = None,
    action: Annotated[str, Query(max_length=60)] = "",
    actor: Annotated[str, Query(max_length=254)] = "",
) -> Response:
    """Who did what, newest first, filtered by action and actor."""
    rows, next_before = await service.page(session, before=before, action=action.strip() or None,
                                           actor=actor.strip() or None)
    context = {"rows": rows, "next_before": next_before, "action": action, "actor": actor}
    return templating.render(request, "admin/audit.html", context, user=admin)
