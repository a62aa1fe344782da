"""Reply templates: kept by admins, filled with a ticket's variables for the composer."""

import re
from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.db import utcnow
from helpdesk.errors import Conflict, NotFound
from helpdesk.replies.models import ReplyTemplate, ReplyTemplateForm

VARIABLES = ("customer_name", "last_order_number", "last_order_date", "last_order_total",
             "ticket_number", "operator_name")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(body: str, values: Mapping[str, str]) -> str:
    """``body`` with each known ``{variable}`` replaced; unknown braces stay as written."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), body)


async def all_templates(session: AsyncSession) -> list[ReplyTemplate]:
    """Every template, by name."""
    return list(await session.scalars(select(ReplyTemplate).order_by(col(ReplyTemplate.name))))


async def get(session: AsyncSession, template_id: int) -> ReplyTemplate:
    """One template; 404 when missing."""
    template = await session.get(ReplyTemplate, template_id)
    if template is None:
        raise NotFound("reply template not found")
    return template


async def save(
    session: AsyncSession, form: ReplyTemplateForm, *, template_id: int | None = None
) -> ReplyTemplate:
    """Create a template, or change the one ``template_id`` names; 409 on a taken name."""
    template = await get(session, template_id) if template_id is not None else ReplyTemplate(
        name="", body="")
    template.name = form.name.strip()[:120]  # as written: ① and （） stay what they are
    template.body = form.body.replace("\r\n", "\n")
    template.set_status = form.set_status or None
    template.add_tags = ", ".join(normalize.nfkc(t)[:60] for t in form.tag_list())[:300]
    template.updated_at = utcnow()
    session.add(template)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("a reply template with that name exists") from None
    return template


async def remove(session: AsyncSession, template_id: int) -> None:
    """Delete a template (no error when it is already gone)."""
    await session.execute(delete(ReplyTemplate).where(col(ReplyTemplate.id) == template_id))
