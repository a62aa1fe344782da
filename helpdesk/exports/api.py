"""``GET /api/exports/{kind}.csv``: streamed CSV, each export an audit row."""

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Supervisor, client_ip
from helpdesk.errors import Forbidden, NotFound
from helpdesk.exports import csvfile, service
from helpdesk.reports.api import media_type
from helpdesk.reports.dependencies import EncodingDep, OpenRangeDep
from helpdesk.web import i18n

router = APIRouter(tags=["exports"])


@router.get("/api/exports/{kind}.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}, 403: {}, 404: {}})
async def export_csv(kind: str, request: Request, user: Supervisor, days: OpenRangeDep,
                     encoding: EncodingDep) -> StreamingResponse:
    """Tickets, messages, calls, customers (supervisors) or the audit log (admins) as CSV."""
    export = service.EXPORTS.get(kind)
    if export is None:
        raise NotFound("no such export: tickets, messages, calls, customers or audit")
    if export.admin_only and user.role != "admin":
        raise Forbidden("only admins export the audit log")
    zone = i18n.zone(user.timezone)
    start, end = days.bounds(zone)
    async with request.app.state.sessionmaker() as session:
        audit.record(session, action="export", actor_id=user.id, actor_email=user.email,
                     target_type="export", target_id=kind, ip=client_ip(request),
                     encoding=encoding, query=str(request.url.query)[:500])
        await session.commit()
    batches = service.batches(request.app.state.read_sessionmaker, export, start=start, end=end)
    return StreamingResponse(
        csvfile.stream(export.header, batches, encoding=encoding, zone=zone),
        media_type=media_type(encoding),
        headers={"Content-Disposition": csvfile.content_disposition(f"{kind}.csv")})
