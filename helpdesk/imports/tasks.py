"""The import job: read a file batch by batch, write each batch and commit it, then re-rank."""

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.customers import bulk, rfm
from helpdesk.customers import service as customers
from helpdesk.errors import BadInput
from helpdesk.imports import layouts, reader, service
from helpdesk.imports.layouts import Kind
from helpdesk.imports.models import ImportSummary

T = TypeVar("T")


@dataclass(frozen=True)
class ImportOptions:
    mapping: dict[str, str] | None = None
    source: str | None = None
    region: str = "JP"
    timezone: str = "Asia/Tokyo"
    dormant_after_days: int = 180


async def import_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    stream: BinaryIO,
    *,
    kind: Kind,
    options: ImportOptions,
    progress: Callable[[], None] | None = None,
) -> ImportSummary:
    """Import a customers or orders CSV; each batch is committed, so a re-run resumes cheaply."""
    csv_file = reader.open_csv(stream)
    layout = layouts.detect(kind, csv_file.header, options.mapping)
    _require_columns(kind, layout)
    if options.source:
        layout.source = options.source[:20]
    summary = ImportSummary(kind=kind, layout=layout.name, encoding=csv_file.encoding,
                            source=layout.source if kind == Kind.orders else "")
    if kind == Kind.customers:
        batches: Iterator[list[Any]] = service.customer_batches(
            csv_file.rows, layout, summary, options.region)
    else:
        batches = service.order_batches(csv_file.rows, layout, summary, options.region,
                                        ZoneInfo(options.timezone))
    # Parsing the next batch (Python, in a thread) overlaps writing this one (SQLite and the
    # network release the GIL), which keeps both cores busy.
    upcoming = asyncio.ensure_future(asyncio.to_thread(_next, batches))
    while (batch := await upcoming) is not None:
        upcoming = asyncio.ensure_future(asyncio.to_thread(_next, batches))
        # A session per batch: other writers (webhooks, operators) get their turn in between.
        async with sessionmaker() as session:
            await _write(session, kind, batch, summary, options)
            await session.commit()
        if progress:
            progress()
    async with sessionmaker() as session:
        await rfm.refresh(session, dormant_after_days=options.dormant_after_days)
        await session.commit()
    return summary


def _next(batches: Iterator[T]) -> T | None:
    # CSV parsing is CPU work: it runs in a thread so the event loop keeps serving requests.
    return next(batches, None)


def _require_columns(kind: Kind, layout: layouts.Layout) -> None:
    if not (layout.has("email") or layout.has("phone")):
        raise BadInput("no email or phone column found; name one with a mapping such as "
                       "email=メールアドレス")
    if kind == Kind.orders:
        missing = [f for f in ("number", "ordered_at") if not layout.has(f)]
        if missing:
            raise BadInput(f"no {' or '.join(missing)} column found; name it with a mapping")


async def _write(
    session: AsyncSession, kind: Kind, batch: list[Any], summary: ImportSummary,
    options: ImportOptions,
) -> None:
    if kind == Kind.customers:
        result = await bulk.import_customers(session, batch, region=options.region)
    else:
        result = await bulk.import_orders(session, batch, region=options.region)
    await customers.refresh_aggregates(session, result.touched)
    summary.created += result.created
    summary.updated += result.updated
    summary.unchanged += result.unchanged
