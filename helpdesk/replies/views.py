"""The reply templates admin page."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput
from helpdesk.replies import service
from helpdesk.replies.models import ReplyTemplateForm
from helpdesk.tickets.models import Status
from helpdesk.web import templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)
Name = Annotated[str, Form(max_length=120)]
Body = Annotated[str, Form(max_length=20_000)]


SetStatus = Annotated[str, Form(max_length=20)]
AddTags = Annotated[str, Form(max_length=300)]


def _form(name: str, body: str, set_status: str = "", add_tags: str = "") -> ReplyTemplateForm:
    if set_status and set_status not in {s.value for s in Status}:
        raise BadInput("a control has a value that is not offered")
    try:
        return ReplyTemplateForm(name=name.strip(), body=body, set_status=set_status or None,
                                 add_tags=add_tags)
    except ValidationError:
        raise BadInput("name and body are required") from None


async def _page(request: Request, session: AsyncSession, admin: Admin, block: str | None) -> Response:
    context = {"templates": await service.all_templates(session), "variables": service.VARIABLES}
    return templating.render(request, "admin/templates.html", context, user=admin, block=block)


@router.get("/admin/templates")
async def templates_page(request: Request, session: ReadSessionDep, admin: Admin) -> Response:
    """Every reply template, editable."""
    return await _page(request, session, admin, None)


@router.post("/admin/templates")
async def create_template(
    request: Request, session: SessionDep, admin: Admin, name: Name, body: Body,
    set_status: SetStatus = "", add_tags: AddTags = "",
) -> Response:
    """Add a template (a macro when it also sets a status or adds tags)."""
    template = await service.save(session, _form(name, body, set_status, add_tags))
    audit.record(session, action="reply_template.create", actor_id=admin.id,
                 actor_email=admin.email, target_type="reply_template", target_id=template.id)
    await session.commit()
    async with fresh_reader(request) as reader:
        return await _page(request, reader, admin, "template_list")


@router.post("/admin/templates/{template_id}")
async def update_template(
    request: Request, session: SessionDep, admin: Admin, template_id: int, name: Name, body: Body,
    set_status: SetStatus = "", add_tags: AddTags = "",
) -> Response:
    """Change a template."""
    await service.save(session, _form(name, body, set_status, add_tags), template_id=template_id)
    audit.record(session, action="reply_template.update", actor_id=admin.id,
                 actor_email=admin.email, target_type="reply_template", target_id=template_id)
    await session.commit()
    async with fresh_reader(request) as reader:
        return await _page(request, reader, admin, "template_list")


@router.post("/admin/templates/{template_id}/delete")
async def delete_template(
    request: Request, session: SessionDep, admin: Admin, template_id: int
) -> Response:
    """Remove a template."""
    await service.remove(session, template_id)
    audit.record(session, action="reply_template.delete", actor_id=admin.id,
                 actor_email=admin.email, target_type="reply_template", target_id=template_id)
    await session.commit()
    async with fresh_reader(request) as reader:
        return await _page(request, reader, admin, "template_list")
