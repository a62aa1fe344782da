"""Imports started from the admin pages: the upload is checked whole before anything is written,
then imported in the background with the CLI's importer while its row says how far it got."""

import asyncio
import io
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from helpdesk.db import utcnow
from helpdesk.errors import BadInput, NotFound
from helpdesk.imports import reader, tasks
from helpdesk.imports.layouts import Kind
from helpdesk.imports.models import ImportRun, ImportSummary

log = logging.getLogger(__name__)
MAX_UPLOAD_BYTES = 8 * 1024 * 1024  # below the body limit, so the page can say why
PROGRESS_EVERY = 0.25  # seconds between progress writes
Finisher = Callable[[ImportSummary], Coroutine[Any, Any, None]]


def check_upload(data: bytes, kind: Kind, options: tasks.ImportOptions) -> None:
    """422 with a reason people can act on unless ``data`` is CSV text the importer can read
    as ``kind`` (the same checks the CLI makes, all before anything is written)."""
    if not data.strip():
        raise BadInput("the file is empty")
    if len(data) > MAX_UPLOAD_BYTES:
        raise BadInput("the file is larger than 8 MB; split it, or use the helpdesk import command")
    if b"\x00" in data[:65536]:  # spreadsheets, images and UTF-16 text all carry NUL bytes
        raise BadInput("this is not a CSV file; save it as CSV (UTF-8 or Shift_JIS) and upload that")
    try:
        reader.check_decodes(io.BytesIO(data))
    except BadInput:
        raise BadInput("the file is neither UTF-8 nor Shift_JIS text; save it in one of those "
                       "and upload it again") from None
    csv_file = reader.open_csv(io.BytesIO(data))
    try:
        tasks.check_columns(kind, csv_file.header, options)
    finally:
        csv_file.release()


async def start(session: AsyncSession, *, kind: Kind, filename: str, user_id: int,
                total_bytes: int) -> ImportRun:
    """The run's row, flushed, before its import begins."""
    run = ImportRun(kind=kind, filename=filename[:255], user_id=user_id, total_bytes=total_bytes)
    session.add(run)
    await session.flush()
    return run


async def get(session: AsyncSession, run_id: int) -> ImportRun:
    """One run; 404 when missing."""
    run = await session.get(ImportRun, run_id)
    if run is None:
        raise NotFound("import not found")
    return run


def launch(sessionmaker: async_sessionmaker[AsyncSession], run_id: int, data: bytes, *,
           kind: Kind, options: tasks.ImportOptions, tasks_held: set[asyncio.Task[None]],
           finished: Finisher) -> None:
    """Import in the background; ``tasks_held`` keeps the task alive until it ends."""
    task = asyncio.create_task(_run(sessionmaker, run_id, data, kind=kind, options=options,
                                    finished=finished), name=f"import-{run_id}")
    tasks_held.add(task)
    task.add_done_callback(tasks_held.discard)


async def _run(sessionmaker: async_sessionmaker[AsyncSession], run_id: int, data: bytes, *,
               kind: Kind, options: tasks.ImportOptions, finished: Finisher) -> None:
    done = [0]
    ticker = asyncio.create_task(_report_progress(sessionmaker, run_id, done))
    try:
        summary = await tasks.import_file(sessionmaker, io.BytesIO(data), kind=kind, options=options,
                                          progress=lambda read: done.__setitem__(0, read))
    except BadInput as exc:
        await _finish(sessionmaker, run_id, state="failed", error=exc.message)
        return
    except Exception:
        log.exception("import %s stopped", run_id)
        await _finish(sessionmaker, run_id, state="failed", error="the import stopped unexpectedly")
        return
    finally:
        ticker.cancel()
    await _finish(sessionmaker, run_id, state="done", summary=summary.model_dump(mode="json"),
                  done_bytes=len(data))
    await finished(summary)


async def _report_progress(sessionmaker: async_sessionmaker[AsyncSession], run_id: int,
                           done: list[int]) -> None:
    written = 0
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        if done[0] != written:
            written = done[0]
            async with sessionmaker() as session:
                await session.execute(update(ImportRun).where(col(ImportRun.id) == run_id)
                                      .values(done_bytes=written))
                await session.commit()


async def _finish(sessionmaker: async_sessionmaker[AsyncSession], run_id: int, *, state: str,
                  **values: Any) -> None:
    async with sessionmaker() as session:
        await session.execute(update(ImportRun).where(col(ImportRun.id) == run_id).values(
            state=state, finished_at=utcnow(), **values))
        await session.commit()
