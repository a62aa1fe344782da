"""The IP allow-list admin page."""

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.access import service
from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Admin, client_ip
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.web import templating
from helpdesk.web.sessions import fresh_reader

router = APIRouter(include_in_schema=False)


def _ip(request: Request) -> str | None:
    return client_ip(request)


async def _page(request: Request, session: AsyncSession, admin: Admin, block: str | None) -> Response:
    context = {"rules": await service.rules(session), "your_ip": _ip(request)}
    return templating.render(request, "admin/access.html", context, user=admin, block=block)


async def _reload(request: Request) -> None:
    await request.app.state.allow_list.load(request.app.state.read_sessionmaker)


@router.get("/admin/access")
async def access_page(request: Request, session: ReadSessionDep, admin: Admin) -> Response:
    """The addresses staff may use; empty means any."""
    return await _page(request, session, admin, None)


@router.post("/admin/access")
async def add_rule(
    request: Request, session: SessionDep, admin: Admin, network: Annotated[str, Form(max_length=64)],
    note: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Allow an address or block; refused if it would lock the admin out."""
    rule = await service.add(session, network=network, note=note, admin_ip=_ip(request))
    audit.record(session, action="ip_rule.add", actor_id=admin.id, actor_email=admin.email,
                 target_type="ip_rule", target_id=rule.id, ip=_ip(request), network=rule.network)
    await session.commit()
    await _reload(request)
    async with fresh_reader(request) as reader:
        return await _page(request, reader, admin, "rule_list")


@router.post("/admin/access/{rule_id}/delete")
async def remove_rule(request: Request, session: SessionDep, admin: Admin, rule_id: int) -> Response:
    """Drop an entry; refused if it would lock the admin out."""
    await service.remove(session, rule_id=rule_id, admin_ip=_ip(request))
    audit.record(session, action="ip_rule.remove", actor_id=admin.id, actor_email=admin.email,
                 target_type="ip_rule", target_id=rule_id, ip=_ip(request))
    await session.commit()
    await _reload(request)
    async with fresh_reader(request) as reader:
        return await _page(request, reader, admin, "rule_list")
