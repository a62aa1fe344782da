"""Reply templates: shared ones kept by supervisors and admins, personal ones by their owner,
filled with a ticket's variables for the composer."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import Role, User
from helpdesk.db import utcnow
from helpdesk.errors import Conflict, Forbidden, NotFound
from helpdesk.replies.models import ReplyTemplate, ReplyTemplateForm

VARIABLES = ("customer_name", "last_order_number", "last_order_date", "last_order_total",
             "ticket_number", "operator_name")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_KEEPERS_OF_SHARED = {Role.supervisor, Role.admin}


@dataclass(frozen=True)
class Group:
    """Templates of one category, shared or the viewer's own, as the picker shows them."""

    category: str
    personal: bool
    templates: list[ReplyTemplate]


def fill(body: str, values: Mapping[str, str]) -> str:
    """``body`` with each known ``{variable}`` replaced; unknown braces stay as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


def may_share(user: User) -> bool:
    """Whether the user may create and change shared templates."""
    return user.role in _KEEPERS_OF_SHARED


def may_edit(user: User, template: ReplyTemplate) -> bool:
    """Personal templates are their owner's alone; shared ones are kept by supervisors and admins."""
    if template.owner_id is not None:
        return template.owner_id == user.id
    return may_share(user)


async def all_templates(session: AsyncSession) -> list[ReplyTemplate]:
    """Every shared template, by name."""
    return list(await session.scalars(select(ReplyTemplate).where(
        col(ReplyTemplate.owner_id).is_(None)).order_by(col(ReplyTemplate.name))))


async def visible(session: AsyncSession, user: User) -> list[ReplyTemplate]:
    """The shared templates and the user's own, by category then name."""
    return list(await session.scalars(select(ReplyTemplate).where(or_(
        col(ReplyTemplate.owner_id).is_(None), col(ReplyTemplate.owner_id) == user.id,
    )).order_by(col(ReplyTemplate.category), col(ReplyTemplate.name))))


def grouped(templates: Sequence[ReplyTemplate]) -> list[Group]:
    """The user's own templates first, then the shared ones, each by category."""
    groups: dict[tuple[bool, str], list[ReplyTemplate]] = {}
    for template in templates:
        groups.setdefault((template.owner_id is not None, template.category), []).append(template)
    order = sorted(groups, key=lambda key: (not key[0], key[1] == "", key[1]))
    return [Group(category=category, personal=personal, templates=groups[(personal, category)])
            for personal, category in order]


async def get(session: AsyncSession, template_id: int) -> ReplyTemplate:
    """One template; 404 when missing."""
    template = await session.get(ReplyTemplate, template_id)
    if template is None:
        raise NotFound("reply template not found")
    return template


async def usable(session: AsyncSession, template_id: int, user: User) -> ReplyTemplate:
    """A template the user may insert: shared or their own; 404 otherwise."""
    template = await get(session, template_id)
    if template.owner_id is not None and template.owner_id != user.id:
        raise NotFound("reply template not found")
    return template


async def editable(session: AsyncSession, template_id: int, user: User) -> ReplyTemplate:
    """A template the user may change or delete; 403 when it is not theirs to keep."""
    template = await get(session, template_id)
    if not may_edit(user, template):
        raise Forbidden("only its owner changes a personal template, and only supervisors "
                        "and admins change shared ones")
    return template


async def save(
    session: AsyncSession, form: ReplyTemplateForm, *, template_id: int | None = None,
    owner_id: int | None = None,
) -> ReplyTemplate:
    """Create a template (``owner_id`` makes it personal), or change the one ``template_id``
    names (its owner stays); 409 on a name its owner (or the shared set) already uses."""
    template = await get(session, template_id) if template_id is not None else ReplyTemplate(
        name="", body="", owner_id=owner_id)
    template.name = form.name.strip()[:120]  # as written: ① and （） stay what they are
    template.category = form.category.strip()[:60]
    template.body = form.body.replace("\r\n", "\n")
    template.set_status = form.set_status or None
    template.add_tags = ", ".join(normalize.nfkc(t)[:60] for t in form.tag_list())[:300]
    template.updated_at = utcnow()
    if template.owner_id is None and await _shared_name_taken(session, template):
        raise Conflict("a reply template with that name exists")
    session.add(template)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("a reply template with that name exists") from None
    return template


async def _shared_name_taken(session: AsyncSession, template: ReplyTemplate) -> bool:
    found = await session.scalar(select(col(ReplyTemplate.id)).where(
        col(ReplyTemplate.owner_id).is_(None), col(ReplyTemplate.name) == template.name))
    return found is not None and found != template.id


async def remove(session: AsyncSession, template_id: int) -> None:
    """Delete a template (no error when it is already gone)."""
    await session.execute(delete(ReplyTemplate).where(col(ReplyTemplate.id) == template_id))
