"""``helpdesk import customers|orders FILE``: a progress bar, then what was imported and skipped."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from helpdesk.config import Settings
from helpdesk.db import create_engine
from helpdesk.errors import BadInput
from helpdesk.imports import layouts, tasks
from helpdesk.imports.layouts import Kind
from helpdesk.imports.models import ImportSummary
from helpdesk.realtime.log import event_sessions


def run(kind: str, file: str, settings: Settings, *, mapping: str | None = None,
        source: str | None = None) -> int:
    """Import ``file``; the exit status is 1 when the file could not be read at all."""
    console = Console()
    path = Path(file)
    if not path.is_file():
        console.print(f"[red]error:[/red] no such file: {file}")
        return 1
    try:
        options = tasks.ImportOptions(
            mapping=layouts.parse_map(mapping), source=source, region=settings.default_region,
            timezone=settings.timezone, dormant_after_days=settings.dormant_after_days,
            pause_collector=True)  # this process only imports
        with path.open("rb") as stream, _progress(console) as progress:
            bar = progress.add_task(f"{kind} {path.name}", total=path.stat().st_size)
            summary = asyncio.run(_import(settings, stream, Kind(kind), options,
                                          lambda done: progress.update(bar, completed=done)))
            progress.update(bar, completed=path.stat().st_size)
    except BadInput as exc:
        console.print(f"[red]error:[/red] {exc.message}")
        return 1
    _report(console, summary)
    return 0


async def _import(settings: Settings, stream: BinaryIO, kind: Kind, options: tasks.ImportOptions,
                  progress: Callable[[int], None]) -> ImportSummary:
    engine = create_engine(settings.database_url)
    try:
        return await tasks.import_file(event_sessions(engine), stream, kind=kind,
                                       options=options, progress=progress)
    finally:
        await engine.dispose()


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TimeRemainingColumn(), console=console, transient=False)


def _report(console: Console, summary: ImportSummary) -> None:
    table = Table(title=f"{summary.kind} import ({summary.layout} layout, {summary.encoding})")
    for column in ("rows", "created", "updated", "unchanged", "skipped"):
        table.add_column(column, justify="right")
    table.add_row(*(str(getattr(summary, c)) for c in ("rows", "created", "updated", "unchanged",
                                                        "skipped")))
    console.print(table)
    for problem in summary.problems:
        console.print(f"  line {problem.line}: {problem.reason}")
    if summary.problems_truncated:
        console.print(f"  … {summary.skipped - len(summary.problems)} more skipped lines")
