"""The CSV import page: upload customers or orders, watch the progress, read the CLI's report."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import RowId, SettingsDep, Supervisor
from helpdesk.auth.models import User
from helpdesk.db import ReadSessionDep, SessionDep
from helpdesk.imports import tasks
from helpdesk.imports.layouts import Kind
from helpdesk.imports.models import ImportRun, ImportSummary
from helpdesk.imports.uploads import tasks as runs
from helpdesk.web import templating
from helpdesk.web.messages import N_

router = APIRouter(include_in_schema=False)
PAGE = "/admin/import"

# Shown in the page's toast or report, through the catalogues.
MESSAGES = (
    N_("the file is empty"),
    N_("the file is larger than 8 MB; split it, or use the helpdesk import command"),
    N_("this is not a CSV file; save it as CSV (UTF-8 or Shift_JIS) and upload that"),
    N_("the file is neither UTF-8 nor Shift_JIS text; save it in one of those and upload it again"),
    N_("the file is empty or has no header row"),
    N_("no email or phone column found; name one with a mapping such as email=メールアドレス"),
    N_("the import stopped unexpectedly"),
    N_("import not found"),
)


def _progress(run: ImportRun) -> dict[str, Any]:
    percent = 100 if run.state != "running" else (
        min(99, run.done_bytes * 100 // run.total_bytes) if run.total_bytes else 0)
    summary = ImportSummary.model_validate(run.summary) if run.summary else None
    return {"run": run, "percent": percent, "summary": summary}


@router.get(PAGE)
async def import_page(request: Request, user: Supervisor) -> Response:
    """The upload form."""
    context = {"run": None, "max_bytes": runs.MAX_UPLOAD_BYTES}
    return templating.render(request, "admin/import.html", context, user=user)


@router.post(PAGE)
async def start_import(
    request: Request, session: SessionDep, settings: SettingsDep, user: Supervisor,
    kind: Annotated[Kind, Form()], file: Annotated[UploadFile, File()],
) -> Response:
    """Check the whole upload, then import it in the background; the answer shows its progress."""
    data = await file.read(runs.MAX_UPLOAD_BYTES + 1)
    options = tasks.ImportOptions(region=settings.default_region, timezone=settings.timezone,
                                  dormant_after_days=settings.dormant_after_days)
    runs.check_upload(data, kind, options)
    assert user.id is not None
    run = await runs.start(session, kind=kind, filename=file.filename or "", user_id=user.id,
                           total_bytes=len(data))
    await session.commit()
    assert run.id is not None
    runs.launch(request.app.state.sessionmaker, run.id, data, kind=kind, options=options,
                tasks_held=_held(request), finished=_auditor(request, user, kind, run))
    return templating.render(request, "admin/import.html", _progress(run), user=user, block="run")


@router.get(PAGE + "/{run_id}")
async def import_progress(request: Request, session: ReadSessionDep, user: Supervisor,
                          run_id: RowId) -> Response:
    """How far the import has got, then its report (polled by the page while it runs)."""
    run = await runs.get(session, run_id)
    return templating.render(request, "admin/import.html", _progress(run), user=user, block="run")


def _held(request: Request) -> set[Any]:
    held: set[Any] | None = getattr(request.app.state, "import_runs", None)
    if held is None:
        held = request.app.state.import_runs = set()
    return held


def _auditor(request: Request, user: User, kind: Kind, run: ImportRun) -> runs.Finisher:
    """The audit row the API writes for an import, written when this one ends."""
    sessionmaker = request.app.state.sessionmaker
    ip = request.client.host if request.client else None

    async def record(summary: ImportSummary) -> None:
        async with sessionmaker() as session:
            audit.record(session, action=f"{kind}.import", actor_id=user.id, actor_email=user.email,
                         ip=ip, filename=run.filename, created=summary.created,
                         updated=summary.updated, skipped=summary.skipped)
            await session.commit()
    return record
