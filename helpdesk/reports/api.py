"""``GET /api/reports/operators`` and ``/api/reports/inboxes``: day rows from the rollups."""

from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from helpdesk.audit import service as audit
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import Supervisor, client_ip
from helpdesk.auth.models import User
from helpdesk.db import ReadSessionDep
from helpdesk.exports import csvfile
from helpdesk.inboxes import service as inbox_service
from helpdesk.reports import queries
from helpdesk.reports.dependencies import EncodingDep, Format, RangeDep
from helpdesk.reports.models import InboxDayPublic, OperatorDayPublic
from helpdesk.web import i18n

router = APIRouter(tags=["reports"])

OPERATOR_COLUMNS = ("date", "user_id", "name", "handled", "replies", "calls_answered",
                    "handling_seconds", "first_response_seconds_median", "first_response_seconds_p90",
                    "resolution_seconds_median", "resolution_seconds_p90")
INBOX_COLUMNS = ("date", "inbox_id", "name", "created", "resolved", "backlog_unhandled",
                 "backlog_in_progress", "backlog_pending", "oldest_waiting_at", "sla_met_ratio",
                 "calls_offered", "calls_answered", "calls_abandoned", "service_level_20s",
                 "average_wait_seconds", "average_talk_seconds")


class OperatorReport(BaseModel):
    items: list[OperatorDayPublic]


class InboxReport(BaseModel):
    items: list[InboxDayPublic]


@router.get("/api/reports/operators", response_model=OperatorReport)
async def operators(request: Request, session: ReadSessionDep, user: Supervisor, days: RangeDep,
                    encoding: EncodingDep, inbox_id: Annotated[int | None, Query(ge=1)] = None,
                    format: Format = "json") -> Any:
    """Each operator's figures per day (supervisors); ``format=csv`` for a spreadsheet."""
    items = await queries.operator_days(session, start=days.start, end=days.end,
                                        names=await auth.names(session), inbox_id=inbox_id)
    if format == "csv":
        rows = [[item.date, item.user_id, item.name, *(getattr(item, c) for c in OPERATOR_COLUMNS[3:])]
                for item in items]
        return await csv_response(request, user, f"operators-{days.start}-{days.end}.csv",
                                  OPERATOR_COLUMNS, rows, encoding=encoding, kind="report.operators")
    return OperatorReport(items=items)


@router.get("/api/reports/inboxes", response_model=InboxReport)
async def inboxes(request: Request, session: ReadSessionDep, user: Supervisor, days: RangeDep,
                  encoding: EncodingDep, format: Format = "json") -> Any:
    """Each inbox's figures per day (supervisors); ``format=csv`` for a spreadsheet."""
    names = {i.id: i.name for i in await inbox_service.all_inboxes(session) if i.id is not None}
    items = await queries.inbox_days(session, start=days.start, end=days.end, names=names)
    if format == "csv":
        rows = [[item.date, item.inbox_id, item.name, item.created, item.resolved,
                 *item.backlog.values(), *(getattr(item, c) for c in INBOX_COLUMNS[8:])]
                for item in items]
        return await csv_response(request, user, f"inboxes-{days.start}-{days.end}.csv",
                                  INBOX_COLUMNS, rows, encoding=encoding, kind="report.inboxes")
    return InboxReport(items=items)


async def csv_response(request: Request, user: User, filename: str, header: Sequence[str],
                       rows: list[list[Any]], *, encoding: csvfile.Encoding, kind: str) -> Response:
    """A report table as CSV, recorded in the audit log like every export."""
    async with request.app.state.sessionmaker() as session:
        audit.record(session, action="export", actor_id=user.id, actor_email=user.email,
                     target_type="export", target_id=kind, ip=client_ip(request),
                     encoding=encoding, query=str(request.url.query)[:500])
        await session.commit()

    async def one_batch() -> AsyncIterator[list[Sequence[Any]]]:
        yield list(rows)

    return StreamingResponse(
        csvfile.stream(header, one_batch(), encoding=encoding, zone=i18n.zone(user.timezone)),
        media_type=media_type(encoding),
        headers={"Content-Disposition": csvfile.content_disposition(filename)})


def media_type(encoding: csvfile.Encoding) -> str:
    return f"text/csv; charset={'Shift_JIS' if encoding == 'cp932' else 'utf-8'}"
