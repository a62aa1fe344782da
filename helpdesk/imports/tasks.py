"""The import job: read a file batch by batch, write each batch and commit it, then re-rank."""

import asyncio
import contextlib
import gc
import multiprocessing
import os
import pickle
import queue
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, BinaryIO, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from helpdesk.config import DEFAULT_REGION
from helpdesk.customers import bulk, rfm
from helpdesk.customers import orders as customer_orders
from helpdesk.customers.models import IncomingCustomer, IncomingOrder, OrderLine
from helpdesk.errors import BadInput
from helpdesk.imports import layouts, reader, service
from helpdesk.imports.layouts import Kind
from helpdesk.imports.models import ImportSummary

T = TypeVar("T")


@dataclass(frozen=True)
class ImportOptions:
    mapping: dict[str, str] | None = None
    source: str | None = None
    region: str = DEFAULT_REGION
    timezone: str = "Asia/Tokyo"
    dormant_after_days: int = 180
    # Files on disk at least this big are parsed in a child process (see _batches_from_process):
    # starting one costs under a second, a few seconds of parsing in a thread more.
    parse_process_min_bytes: int = 4 << 20
    # Pause automatic garbage collection while each batch is written (see collector_paused).
    # The collector is the whole process's: only a process that does nothing but import (the
    # CLI) may pause it. In the server an upload imports beside live sockets, whose garbage
    # must keep being collected, so there it stays on.
    pause_collector: bool = False


async def import_file(
    sessionmaker: async_sessionmaker[AsyncSession],
    stream: BinaryIO,
    *,
    kind: Kind,
    options: ImportOptions,
    progress: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import a customers or orders CSV; each batch is committed, so a re-run resumes cheaply.

    ``progress`` is told how many bytes of the file have been read after each batch.
    """
    csv_file = reader.open_csv(stream)
    try:
        layout = _layout(kind, csv_file.header, options)
        summary = ImportSummary(kind=kind, layout=layout.name, encoding=csv_file.encoding,
                                source=layout.source if kind == Kind.orders else "")
        recount = await _open_recount(sessionmaker) if kind == Kind.orders else None
        await _write_batches(sessionmaker, _batches(csv_file, stream, kind, layout, summary, options),
                             kind=kind, summary=summary, options=options, recount=recount,
                             progress=progress)
    finally:
        csv_file.release()  # however it ended, the caller gets its stream back open
    if recount is not None:
        await _settle_recount(sessionmaker, recount)
    async with sessionmaker() as session:
        await rfm.refresh(session, dormant_after_days=options.dormant_after_days)
        await session.commit()
    return summary


def _batches(csv_file: reader.CsvFile, stream: BinaryIO, kind: Kind, layout: layouts.Layout,
             summary: ImportSummary, options: ImportOptions
             ) -> AsyncGenerator[tuple[list[Any], int], None]:
    path = _big_file_path(stream, options.parse_process_min_bytes)
    if path is not None:
        csv_file.release()  # the child reads the file itself
        return _batches_from_process(path, kind, options, summary)
    return _batches_from_thread(stream, _parse(kind, csv_file, layout, summary, options))


async def _write_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    batches: AsyncGenerator[tuple[list[Any], int], None], *, kind: Kind, summary: ImportSummary,
    options: ImportOptions, recount: int | None, progress: Callable[[int], None] | None,
) -> None:
    """Write and commit each batch; if that stops halfway, count the orders that were committed."""
    known = bulk.KnownOwners()
    try:
        async with contextlib.aclosing(batches):
            async for batch, position in batches:
                # A session per batch: other writers (webhooks, operators) get their turn between.
                with collector_paused(options.pause_collector):
                    async with sessionmaker() as session:
                        await _write(session, kind, batch, summary, options, known)
                        if recount is not None:
                            await customer_orders.beat_recount(session, recount)
                        await session.commit()
                    del batch
                if progress:
                    progress(position)
    except BaseException:
        if recount is not None:
            # Count what was committed; if even that fails, the row stays for a recovery.
            with contextlib.suppress(Exception):
                await _settle_recount(sessionmaker, recount)
        raise


async def _open_recount(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """New orders are counted into their customers' totals once, at the end: batch by batch,
    that rewrote thousands of customer rows each time, a quarter of an orders import."""
    async with sessionmaker() as session:
        recount = await customer_orders.open_recount(session)
        await session.commit()
    return recount


async def _settle_recount(sessionmaker: async_sessionmaker[AsyncSession], recount: int) -> None:
    """Recount the import's customers a few thousand to a transaction, like its batches: one
    transaction for a hundred thousand customers held SQLite's write lock for seconds. A stop
    halfway leaves the row open, and the recount (idempotent) is done again by a recovery."""
    async with sessionmaker() as session:
        customer_ids = await customer_orders.recount_customers(session, recount)
    if customer_ids is None:
        return
    for start in range(0, len(customer_ids), RECOUNT_CHUNK):
        async with sessionmaker() as session:
            await customer_orders.refresh_aggregates(session, customer_ids[start:start + RECOUNT_CHUNK])
            await session.commit()
    async with sessionmaker() as session:
        await customer_orders.close_recount(session, recount)
        await session.commit()


RECOUNT_CHUNK = 10_000


_pauses = 0  # batches being written or received right now, in this process
_pauses_lock = threading.Lock()  # receiving threads pause too


@contextlib.contextmanager
def collector_paused(pausing: bool = True) -> Iterator[None]:
    """No automatic garbage collection while a batch is written (unless ``pausing`` is False).

    A batch is thousands of rows, parameters and results that live only until its commit.
    Collections in the middle promote them to the oldest generation, whose full passes over
    everything then took a third of an import's time; freed by reference counting right after
    the commit, they never reach a collection at all. The few cycles a batch leaves (its
    session's) are collected once collection resumes. Concurrent imports nest.
    """
    global _pauses
    with _pauses_lock:
        if not pausing or (_pauses == 0 and not gc.isenabled()):  # off by someone else: leave it so
            pausing = False
        else:
            _pauses += 1
            gc.disable()
    try:
        yield
    finally:
        if pausing:
            with _pauses_lock:
                _pauses -= 1
                if _pauses == 0:
                    gc.enable()


def _layout(kind: Kind, header: list[str], options: ImportOptions) -> layouts.Layout:
    layout = layouts.detect(kind, header, options.mapping)
    _require_columns(kind, layout)
    if options.source:
        layout.source = options.source[:20]
    return layout


def _parse(kind: Kind, csv_file: reader.CsvFile, layout: layouts.Layout, summary: ImportSummary,
           options: ImportOptions) -> Iterator[list[Any]]:
    if kind == Kind.customers:
        return service.customer_batches(csv_file.rows, layout, summary, options.region)
    return service.order_batches(csv_file.rows, layout, summary, options.region,
                                 ZoneInfo(options.timezone))


async def _batches_from_thread(
    stream: BinaryIO, batches: Iterator[list[Any]]
) -> AsyncGenerator[tuple[list[Any], int], None]:
    # Parsing the next batch (Python, in a thread) overlaps writing this one (SQLite releases
    # the GIL while it works).
    upcoming = asyncio.ensure_future(asyncio.to_thread(_next, batches, stream))
    try:
        while (item := await upcoming) is not None:
            upcoming = asyncio.ensure_future(asyncio.to_thread(_next, batches, stream))
            yield item
    finally:
        with contextlib.suppress(Exception):  # the batch being parsed: let it end first
            await upcoming


def _next(batches: Iterator[T], stream: BinaryIO) -> tuple[T, int] | None:
    batch = next(batches, None)
    return None if batch is None else (batch, stream.tell())


def _big_file_path(stream: BinaryIO, min_bytes: int) -> str | None:
    """The path of the file behind ``stream`` when it is on disk and at least ``min_bytes``."""
    name = getattr(stream, "name", None)
    if isinstance(name, str) and os.path.isfile(name) and os.path.getsize(name) >= min_bytes:
        return name
    return None


async def _batches_from_process(
    path: str, kind: Kind, options: ImportOptions, summary: ImportSummary
) -> AsyncGenerator[tuple[list[Any], int], None]:
    """Batches parsed by a child process, up to ``PREFETCH_BATCHES`` ahead of the writes.

    Parsing and normalising cost about as much Python as writing does; in a thread the two
    take turns on the GIL, in a child process they run on two cores at once. A thread receives
    the child's batches as soon as they are sent, so the child never waits for the writer to
    finish a batch before parsing on: with one batch ahead only, each waited for the other
    (the writer stood idle for a fifth of a million-order import). The child's counts and
    problems are copied into ``summary`` at the end.
    """
    context = multiprocessing.get_context("spawn")  # no fork of a process with threads
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_parse_in_child, args=(path, kind, options, sending),
                            daemon=True, name="helpdesk-import-parser")
    child.start()
    sending.close()
    arrived: queue.Queue[tuple[Any, ...]] = queue.Queue(maxsize=PREFETCH_BATCHES)
    stopping = threading.Event()
    receiver = threading.Thread(target=_receive_all,
                                args=(receiving, kind, arrived, stopping, options.pause_collector),
                                daemon=True, name="helpdesk-import-receiver")
    receiver.start()
    try:
        while (message := await asyncio.to_thread(arrived.get))[0] == "batch":
            yield message[1], message[2]
        if message[0] == "error":
            raise BadInput(message[1])
        done: ImportSummary = message[1]
        summary.rows, summary.skipped = done.rows, done.skipped
        summary.problems, summary.problems_truncated = done.problems, done.problems_truncated
    finally:
        # Stopped early (a write failed): the child may be blocked sending; killing it ends the
        # pipe, which ends the receiving thread too.
        stopping.set()
        await asyncio.to_thread(_stop, child)
        await asyncio.to_thread(receiver.join)
        receiving.close()
        with contextlib.suppress(queue.Full):  # wakes a getter left waiting by a cancellation
            arrived.put_nowait(("error", "the import stopped"))


PREFETCH_BATCHES = 3


def _receive_all(connection: Connection, kind: Kind, arrived: "queue.Queue[tuple[Any, ...]]",
                 stopping: threading.Event, pause_collector: bool) -> None:
    """Receive and decode the child's messages into ``arrived`` until the last one (or a stop)."""
    while True:
        message = _receive(connection, kind, pause_collector)
        while not stopping.is_set():
            try:
                arrived.put(message, timeout=0.1)
                break
            except queue.Full:
                continue
        if message[0] != "batch" or stopping.is_set():
            return


def _receive(connection: Connection, kind: Kind, pause_collector: bool) -> tuple[Any, ...]:
    try:
        # Every object unpickled here lives until its batch is committed: collections in
        # the middle would only walk them (they tripled the time a batch took to arrive).
        payload = connection.recv_bytes()
        with collector_paused(pause_collector):
            message: tuple[Any, ...] = pickle.loads(payload)
            if message[0] == "batch":
                message = ("batch", from_wire(kind, message[1]), message[2])
    except EOFError:
        return ("error", "the import's parser stopped unexpectedly")
    return message


# Batches cross the pipe as tuples of plain values. Pickled as they are, slotted dataclasses,
# Decimals and zone-aware datetimes cost the parsing child a third of its time.

def to_wire(kind: Kind, batch: list[Any]) -> list[tuple[Any, ...]]:
    """A parsed batch as plain values (see ``from_wire``)."""
    if kind == Kind.customers:
        return [(c.email, c.phone, c.name, c.name_kana, c.tags, c.note) for c in batch]
    return [(o.source, o.number, _utc_text(o.ordered_at), o.external_id, o.status, str(o.total),
             o.currency, _utc_text(o.remote_updated_at),
             [(i.sku, i.name, i.quantity, str(i.unit_price)) for i in o.items],
             o.email, o.phone, o.name, o.name_kana, o.digest,
             (str(o.shipping), str(o.fees), str(o.discount))) for o in batch]


def from_wire(kind: Kind, rows: list[tuple[Any, ...]]) -> list[Any]:
    """The customers or orders ``to_wire`` was given (datetimes now in UTC)."""
    if kind == Kind.customers:
        return [IncomingCustomer(*row) for row in rows]
    return [IncomingOrder(source=source, number=number, ordered_at=datetime.fromisoformat(ordered_at),
                          external_id=external_id, status=status, total=Decimal(total),
                          currency=currency,
                          remote_updated_at=datetime.fromisoformat(remote) if remote else None,
                          items=[OrderLine(sku, name, quantity, Decimal(price))
                                 for sku, name, quantity, price in items],
                          email=email, phone=phone, name=name, name_kana=kana, digest=digest,
                          shipping=Decimal(charges[0]), fees=Decimal(charges[1]),
                          discount=Decimal(charges[2]))
            for (source, number, ordered_at, external_id, status, total, currency, remote, items,
                 email, phone, name, kana, digest, charges) in rows]


def _utc_text(moment: datetime | None) -> str | None:
    return customer_orders.utc_iso(moment) if moment is not None else None


def _stop(child: BaseProcess) -> None:
    child.join(timeout=1)
    if child.is_alive():
        child.kill()
        child.join()


def _parse_in_child(path: str, kind: Kind, options: ImportOptions, connection: Connection) -> None:
    """The child's whole life: parse ``path`` and send ("batch", rows, position) messages,
    then ("done", summary) or ("error", reason)."""
    # Rows live from parsing to sending: fewer young collections keep them out of the full
    # passes (this process parses and nothing else).
    gc.set_threshold(100_000, 50, 100)
    try:
        with open(path, "rb") as stream:
            csv_file = reader.open_csv(stream)
            layout = _layout(kind, csv_file.header, options)
            summary = ImportSummary(kind=kind)
            for batch in _parse(kind, csv_file, layout, summary, options):
                connection.send(("batch", to_wire(kind, batch), stream.tell()))
            connection.send(("done", summary))
    except BadInput as exc:
        connection.send(("error", exc.message))
    except BrokenPipeError:
        pass  # the parent stopped listening (it failed or was cancelled)
    finally:
        connection.close()


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
    options: ImportOptions, known: bulk.KnownOwners,
) -> None:
    if kind == Kind.customers:
        result = await bulk.import_customers(session, batch, region=options.region, known=known)
    else:
        result = await bulk.import_orders(session, batch, region=options.region, known=known,
                                          count_new=False)
    await customer_orders.refresh_aggregates(session, result.touched)
    summary.created += result.created
    summary.updated += result.updated
    summary.unchanged += result.unchanged
