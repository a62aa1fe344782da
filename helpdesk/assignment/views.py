"""An inbox's routing page: the assignment policy, capacities, channel weights and approvers."""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.approval import service as approval
from helpdesk.approval.models import ApprovalConfig
from helpdesk.assignment import service
from helpdesk.assignment.models import AssignmentConfig
from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Supervisor
from helpdesk.auth.models import User
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput
from helpdesk.inboxes import service as inbox_service
from helpdesk.inboxes.models import InboxMember
from helpdesk.tickets.models import Channel
from helpdesk.web import templating

router = APIRouter(include_in_schema=False)


async def _context(session: AsyncSession, inbox_id: int, *, saved: bool = False) -> dict[str, Any]:
    inbox = await inbox_service.inbox_or_404(session, inbox_id)
    members = list(await session.scalars(
        select(User).join(InboxMember, col(InboxMember.user_id) == col(User.id))
        .where(col(InboxMember.inbox_id) == inbox_id, col(User.is_active).is_(True))
        .order_by(col(User.name))))
    config = await service.load_config(session, inbox_id)
    return {"inbox": inbox, "members": members, "config": config, "channels": [c.value for c in Channel],
            "loads": await service.loads(session, [m.id for m in members if m.id], config.weights),
            "approval": await approval.load_config(session, inbox_id), "saved": saved}


@router.get("/admin/inboxes/{inbox_id}/routing")
async def routing_page(request: Request, inbox_id: int, session: ReadSessionDep,
                       user: Supervisor) -> Response:
    """The inbox's assignment policy and approval rule."""
    return templating.render(request, "admin/inbox_routing.html", await _context(session, inbox_id),
                             user=user)


@router.post("/admin/inboxes/{inbox_id}/routing")
async def save_routing(request: Request, inbox_id: int, session: SessionDep, user: Supervisor) -> Response:
    """Save both from the form (audited); the form again."""
    await inbox_service.inbox_or_404(session, inbox_id)
    form = await request.form(max_files=0, max_fields=2000)
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str) and len(v) <= 100}
    approvers = [int(v) for k, v in form.multi_items() if k == "needs_approval" and isinstance(v, str)
                 and v.isdigit()]
    try:
        assignment = AssignmentConfig.model_validate(_assignment_from(fields))
        rule = ApprovalConfig(required_for=approvers if fields.get("approval") == "selected"
                              else fields.get("approval", "none"))
    except ValidationError as error:
        raise BadInput(str(error.errors()[0].get("msg", "invalid")).removeprefix("Value error, ")) from None
    await service.save_config(session, inbox_id, assignment)
    await approval.save_config(session, inbox_id, rule)
    audit.record(session, action="inbox.routing", actor_id=user.id, actor_email=user.email,
                 target_type="inbox", target_id=inbox_id, policy=assignment.policy)
    await session.commit()
    return templating.render(request, "admin/inbox_routing.html",
                             await _context(session, inbox_id, saved=True), user=user, block="routing_form")


def _assignment_from(fields: dict[str, str]) -> dict[str, Any]:
    capacity = {k.removeprefix("capacity_"): _number(v) for k, v in fields.items()
                if k.startswith("capacity_") and v.strip()}
    weights = {k.removeprefix("weight_"): _number(v) for k, v in fields.items()
               if k.startswith("weight_") and v.strip()}
    grace = fields.get("offline_grace_minutes", "5").strip() or "0"
    return {"policy": fields.get("policy", "manual"), "sticky": fields.get("sticky") == "true",
            "offline_grace_seconds": int(_number(grace) * 60), "capacity": capacity, "weights": weights}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise BadInput(f"not a number: {text[:20]}") from None
