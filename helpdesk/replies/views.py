"""The reply templates pages: everyone keeps their personal templates at /templates, where
supervisors and admins also keep the shared ones; /admin/templates is the same list for admins."""

from typing import Annotated, Literal

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin, CurrentUser, RowId
from helpdesk.auth.models import User
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.errors import BadInput, Forbidden
from helpdesk.replies import service
from helpdesk.replies.models import ReplyTemplateForm
from helpdesk.tickets.models import Status
from helpdesk.web import templating
from helpdesk.web.messages import N_
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)
Name = Annotated[str, Form(max_length=120)]
Body = Annotated[str, Form(max_length=20_000)]
Category = Annotated[str, Form(max_length=60)]
SetStatus = Annotated[str, Form(max_length=20)]
AddTags = Annotated[str, Form(max_length=300)]
Scope = Literal["personal", "shared"]
ADMIN_PAGE, OWN_PAGE = "/admin/templates", "/templates"

# Shown in the page's toast, through the catalogues.
MESSAGES = (
    N_("only its owner changes a personal template, and only supervisors and admins change shared ones"),
    N_("only supervisors and admins add shared templates"),
)


def _form(name: str, body: str, category: str = "", set_status: str = "",
          add_tags: str = "") -> ReplyTemplateForm:
    if set_status and set_status not in {s.value for s in Status}:
        raise BadInput("a control has a value that is not offered")
    try:
        return ReplyTemplateForm(name=name.strip(), body=body, category=category,
                                 set_status=set_status or None, add_tags=add_tags)
    except ValidationError:
        raise BadInput("name and body are required") from None


async def _page(request: Request, session: AsyncSession, user: User, block: str | None,
                base: str) -> Response:
    templates = await service.visible(session, user)
    context = {"groups": service.grouped(templates), "variables": service.VARIABLES,
               "editable": {t.id for t in templates if service.may_edit(user, t)},
               "may_share": service.may_share(user), "base": base}
    return templating.render(request, "admin/templates.html", context, user=user, block=block)


async def _after_change(request: Request, user: User, base: str) -> Response:
    async with fresh_reader(request) as reader:
        return await _page(request, reader, user, "template_list", base)


async def _create(session: AsyncSession, user: User, form: ReplyTemplateForm, scope: Scope) -> None:
    if scope == "shared" and not service.may_share(user):
        raise Forbidden("only supervisors and admins add shared templates")
    template = await service.save(session, form, owner_id=user.id if scope == "personal" else None)
    audit.record(session, action="reply_template.create", actor_id=user.id, actor_email=user.email,
                 target_type="reply_template", target_id=template.id)
    await session.commit()


async def _update(session: AsyncSession, user: User, template_id: int, form: ReplyTemplateForm) -> None:
    await service.editable(session, template_id, user)
    await service.save(session, form, template_id=template_id)
    audit.record(session, action="reply_template.update", actor_id=user.id, actor_email=user.email,
                 target_type="reply_template", target_id=template_id)
    await session.commit()


async def _delete(session: AsyncSession, user: User, template_id: int) -> None:
    await service.editable(session, template_id, user)
    await service.remove(session, template_id)
    audit.record(session, action="reply_template.delete", actor_id=user.id, actor_email=user.email,
                 target_type="reply_template", target_id=template_id)
    await session.commit()


# ---- everyone: /templates --------------------------------------------------------------------


@router.get(OWN_PAGE)
async def own_templates_page(request: Request, session: ReadSessionDep, user: CurrentUser) -> Response:
    """The shared templates and the user's own, the ones they may keep editable."""
    return await _page(request, session, user, None, OWN_PAGE)


@router.post(OWN_PAGE)
async def create_own_template(
    request: Request, session: SessionDep, user: CurrentUser, name: Name, body: Body,
    category: Category = "", set_status: SetStatus = "", add_tags: AddTags = "",
    scope: Annotated[Scope, Form()] = "personal",
) -> Response:
    """Add a personal template, or a shared one (supervisors and admins)."""
    await _create(session, user, _form(name, body, category, set_status, add_tags), scope)
    return await _after_change(request, user, OWN_PAGE)


@router.post(OWN_PAGE + "/{template_id}")
async def update_own_template(
    request: Request, session: SessionDep, user: CurrentUser, template_id: RowId, name: Name,
    body: Body, category: Category = "", set_status: SetStatus = "", add_tags: AddTags = "",
) -> Response:
    """Change a template the user keeps."""
    await _update(session, user, template_id, _form(name, body, category, set_status, add_tags))
    return await _after_change(request, user, OWN_PAGE)


@router.post(OWN_PAGE + "/{template_id}/delete")
async def delete_own_template(
    request: Request, session: SessionDep, user: CurrentUser, template_id: RowId
) -> Response:
    """Remove a template the user keeps."""
    await _delete(session, user, template_id)
    return await _after_change(request, user, OWN_PAGE)


# ---- admins: /admin/templates (shared by default) -------------------------------------------


@router.get(ADMIN_PAGE)
async def templates_page(request: Request, session: ReadSessionDep, admin: Admin) -> Response:
    """Every shared template and the admin's own, editable."""
    return await _page(request, session, admin, None, ADMIN_PAGE)


@router.post(ADMIN_PAGE)
async def create_template(
    request: Request, session: SessionDep, admin: Admin, name: Name, body: Body,
    category: Category = "", set_status: SetStatus = "", add_tags: AddTags = "",
    scope: Annotated[Scope, Form()] = "shared",
) -> Response:
    """Add a template (a macro when it also sets a status or adds tags)."""
    await _create(session, admin, _form(name, body, category, set_status, add_tags), scope)
    return await _after_change(request, admin, ADMIN_PAGE)


@router.post(ADMIN_PAGE + "/{template_id}")
async def update_template(
    request: Request, session: SessionDep, admin: Admin, template_id: RowId, name: Name, body: Body,
    category: Category = "", set_status: SetStatus = "", add_tags: AddTags = "",
) -> Response:
    """Change a template."""
    await _update(session, admin, template_id, _form(name, body, category, set_status, add_tags))
    return await _after_change(request, admin, ADMIN_PAGE)


@router.post(ADMIN_PAGE + "/{template_id}/delete")
async def delete_template(
    request: Request, session: SessionDep, admin: Admin, template_id: RowId
) -> Response:
    """Remove a template."""
    await _delete(session, admin, template_id)
    return await _after_change(request, admin, ADMIN_PAGE)
