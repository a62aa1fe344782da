"""Uploading customer and order CSVs (supervisors and admins)."""

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import Supervisor, client_ip
from helpdesk.config import SettingsDep
from helpdesk.imports import layouts, reader, tasks
from helpdesk.imports.layouts import Kind
from helpdesk.imports.models import ImportSummary

router = APIRouter(tags=["imports"])
UploadDep = Annotated[UploadFile, File(description="a CSV export (UTF-8 or Shift_JIS)")]
MapDep = Annotated[str | None, Form(max_length=2000, description="field=Column,…")]
SourceDep = Annotated[str | None, Form(max_length=20, pattern=r"^[a-z0-9_-]+$")]


async def _run(
    kind: Kind, request: Request, settings: SettingsDep, user: Supervisor,
    file: UploadFile, mapping: str | None, source: str | None,
) -> ImportSummary:
    # The whole upload (at most the body limit) is checked to decode before anything is written.
    reader.check_decodes(file.file)
    options = tasks.ImportOptions(
        mapping=layouts.parse_map(mapping), source=source, region=settings.default_region,
        timezone=settings.timezone, dormant_after_days=settings.dormant_after_days)
    # The import commits batch by batch in sessions of its own, so this route holds none.
    sessionmaker = request.app.state.sessionmaker
    summary = await tasks.import_file(sessionmaker, file.file, kind=kind, options=options)
    async with sessionmaker() as session:
        audit.record(session, action=f"{kind}.import", actor_id=user.id, actor_email=user.email,
                     ip=client_ip(request), filename=file.filename,
                     created=summary.created, updated=summary.updated, skipped=summary.skipped)
        await session.commit()
    return summary


@router.post("/api/customers/import", response_model=ImportSummary)
async def import_customers(
    request: Request, settings: SettingsDep, user: Supervisor,
    file: UploadDep, map: MapDep = None, source: SourceDep = None,
) -> ImportSummary:
    """Import customers from an uploaded CSV; the same rules as ``helpdesk import customers``."""
    return await _run(Kind.customers, request, settings, user, file, map, source)


@router.post("/api/orders/import", response_model=ImportSummary)
async def import_orders(
    request: Request, settings: SettingsDep, user: Supervisor,
    file: UploadDep, map: MapDep = None, source: SourceDep = None,
) -> ImportSummary:
    """Import orders from an uploaded CSV; the same rules as ``helpdesk import orders``."""
    return await _run(Kind.orders, request, settings, user, file, map, source)
