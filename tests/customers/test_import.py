"""CSV imports: encodings, layouts, normalisation, idempotency and bad rows."""

import asyncio
import gc
import multiprocessing
import os
import pickle
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.models import Role
from helpdesk.customers.models import (
    Customer,
    CustomerIdentity,
    IncomingCustomer,
    IncomingOrder,
    Order,
    OrderLine,
)
from helpdesk.errors import BadInput
from helpdesk.imports import tasks
from helpdesk.imports.layouts import Kind
from helpdesk.imports.models import ImportSummary
from helpdesk.realtime.log import event_sessions
from tests.customers.helpers import DATA, snapshot, upload
from tests.support import ROOT
from tests.support.staff import Staff

HELPDESK = str(Path(sys.executable).parent / "helpdesk")


async def _supervisor(staff: Staff) -> dict[str, str]:
    return Staff.headers(await staff.create("boss", Role.supervisor))


async def _customer_by_email(db: AsyncSession, email: str) -> int:
    await db.rollback()
    customer_id = await db.scalar(select(CustomerIdentity.customer_id).where(
        CustomerIdentity.kind == "email", CustomerIdentity.value == email))
    await db.rollback()  # SQLite readers here hold the write lock: let the server in
    assert customer_id is not None, email
    return int(customer_id)


async def test_shift_jis_customers_and_bom_orders_make_the_expected_profiles(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    headers = await _supervisor(staff)
    customers = await upload(http, headers, "customers", "customers_sjis.csv")
    assert customers.status_code == 200, customers.text
    summary = customers.json()
    assert (summary["layout"], summary["encoding"]) == ("ecforce", "cp932")
    assert (summary["rows"], summary["created"], summary["skipped"]) == (5, 3, 2)
    assert summary["problems"] == [
        {"line": 5, "reason": "no email or phone to identify the customer"},
        {"line": 6, "reason": "neither email 'tanaka@@example' nor phone '12' is valid"}]
    orders = await upload(http, headers, "orders", "orders_shopify_bom.csv")
    assert orders.status_code == 200, orders.text
    assert orders.json() | {"problems": []} == {
        "kind": "orders", "layout": "shopify", "source": "shopify", "encoding": "utf-8-sig",
        "rows": 6, "created": 5, "updated": 0, "unchanged": 0, "skipped": 0, "imported": 5,
        "problems": [], "problems_truncated": False}

    taro = await _customer_by_email(db, "taro@example.jp")
    profile = (await http.get(f"/api/customers/{taro}", headers=headers)).json()
    assert profile["name"] == "山田 太郎" and profile["name_kana"] == "ﾔﾏﾀﾞ ﾀﾛｳ"  # as in the file
    assert profile["emails"] == ["taro@example.jp"]
    assert profile["phones"] == ["+819012345678"]  # from ０９０－１２３４－５６７８
    assert profile["tags"] == ["VIP"]
    # #1004 was voided: listed, but not a purchase.
    assert [o["number"] for o in profile["orders"]] == ["#1005", "#1004", "#1001"]
    assert (profile["orders_count"], profile["total_spent"], profile["ltv"]) == (2, "5100.00", "5100.00")
    assert profile["average_order_value"] == "2550.00"
    assert profile["first_order_at"].startswith("2025-01-10T01:00:00")
    assert profile["last_order_at"].startswith("2025-03-01T09:30:00")
    assert profile["dormant"] is True and profile["rank"] == "休眠"
    first = profile["orders"][2]
    assert first == {"number": "#1001", "ordered_at": first["ordered_at"], "status": "paid",
                     "total": "3600.00", "currency": "JPY", "items": [
                         {"sku": "TEA-001", "name": "有機煎茶 100g", "quantity": 2, "unit_price": "1200.00"},
                         {"sku": "CUP-203", "name": "有田焼 湯呑み", "quantity": 1, "unit_price": "1200.00"}]}
    hanako = await _customer_by_email(db, "hanako@example.jp")
    matched_by_phone = (await http.get(f"/api/customers/{hanako}", headers=headers)).json()
    assert [o["number"] for o in matched_by_phone["orders"]] == ["#1002"]
    newcomer = await _customer_by_email(db, "new.customer@example.jp")
    assert (await http.get(f"/api/customers/{newcomer}", headers=headers)).json()["name"] == "新規 顧客"
    suzuki = (await http.get("/api/customers", params={"phone": "06-6123-4567"},
                             headers=headers)).json()["items"]
    assert [c["name"] for c in suzuki] == ["鈴木 一郎"]
    assert suzuki[0]["name_kana"] == "すずき いちろう"  # kept as written; search folds it
    by_reading = (await http.get("/api/customers", params={"q": "スズキ"}, headers=headers)).json()
    assert [c["name"] for c in by_reading["items"]] == ["鈴木 一郎"]
    by_width = (await http.get("/api/customers", params={"q": "ヤマダ"}, headers=headers)).json()
    assert [c["name"] for c in by_width["items"]] == ["山田 太郎"]


async def test_importing_the_same_files_again_changes_nothing(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    headers = await _supervisor(staff)
    for kind, name in (("customers", "customers_sjis.csv"), ("orders", "orders_shopify_bom.csv"),
                       ("orders", "orders_bad_rows.csv")):
        assert (await upload(http, headers, kind, name)).status_code == 200
    before = await snapshot(db)
    again = [(await upload(http, headers, kind, name)).json()
             for kind, name in (("customers", "customers_sjis.csv"),
                                ("orders", "orders_shopify_bom.csv"), ("orders", "orders_bad_rows.csv"))]
    assert [(s["created"], s["updated"]) for s in again] == [(0, 0)] * 3
    assert [s["unchanged"] for s in again] == [3, 5, 2]
    assert await snapshot(db) == before


async def test_bad_rows_are_reported_by_line_and_the_good_ones_import(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    headers = await _supervisor(staff)
    await upload(http, headers, "customers", "customers_sjis.csv")
    summary = (await upload(http, headers, "orders", "orders_bad_rows.csv")).json()
    assert (summary["rows"], summary["created"], summary["skipped"]) == (9, 2, 6)
    assert summary["problems"] == [
        {"line": 3, "reason": "no order number"},
        {"line": 4, "reason": "bad date '2025/13/45'"},
        {"line": 5, "reason": "bad total 'abc'"},
        {"line": 6, "reason": "no email or phone to identify the customer"},
        {"line": 8, "reason": "neither email 'bad-email' nor phone '' is valid"},
        {"line": 9, "reason": "bad quantity 'たくさん'"},
    ]
    await db.rollback()
    numbers = set(await db.scalars(select(Order.number)))
    assert numbers == {"A-1", "A-5"}
    suzuki = await db.scalar(select(Customer).where(Customer.name == "鈴木 一郎"))
    assert suzuki is not None and suzuki.orders_count == 1 and suzuki.total_spent == 2000
    suzuki_id = suzuki.id
    await db.rollback()
    profile = (await http.get(f"/api/customers/{suzuki_id}", headers=headers)).json()
    assert [i["sku"] for i in profile["orders"][0]["items"]] == ["CUP-1", "SWT-1"]
    assert profile["orders"][0]["ordered_at"].startswith("2025-02-05T00:30:00")  # 9:30 JST


async def test_a_mapping_reads_other_layouts(http: httpx.AsyncClient, db: AsyncSession,
                                             staff: Staff) -> None:
    headers = await _supervisor(staff)
    content = "会員ID,連絡先メール,連絡先TEL,会員氏名\n1,ＭＡＰ＠example.jp,090-5555-6666,地図 太郎\n"
    unmapped = await upload(http, headers, "customers", "members.csv", content.encode())
    assert unmapped.status_code == 422
    assert "no email or phone column" in unmapped.json()["detail"]
    mapped = await upload(http, headers, "customers", "members.csv", content.encode(),
                          map="email=連絡先メール,phone=連絡先TEL,name=会員氏名")
    assert mapped.status_code == 200, mapped.text
    assert mapped.json()["created"] == 1
    found = (await http.get("/api/customers", params={"email": "map@example.jp"},
                            headers=headers)).json()["items"]
    assert [(c["name"], c["phones"]) for c in found] == [("地図 太郎", ["+819055556666"])]
    bad_map = await upload(http, headers, "customers", "members.csv", content.encode(),
                           map="colour=会員ID")
    assert bad_map.status_code == 422


async def test_uploads_need_a_supervisor_and_readable_csv(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    operator = Staff.headers(await staff.create("op"))
    boss = await _supervisor(staff)
    assert (await upload(http, {}, "customers", "customers_sjis.csv")).status_code == 401
    assert (await upload(http, operator, "customers", "customers_sjis.csv")).status_code == 403
    assert (await upload(http, operator, "orders", "orders_shopify_bom.csv")).status_code == 403
    garbage = await upload(http, boss, "customers", "x.csv", bytes(range(256)) * 50)
    empty = await upload(http, boss, "orders", "x.csv", b"")
    no_file = await http.post("/api/orders/import", headers=boss, data={"map": "email=x"})
    oversized = await upload(http, boss, "customers", "x.csv",
                             b"email,name\n" + b"a@example.jp,x\n" * 800_000)
    assert oversized.status_code == 413
    for response in (garbage, empty, no_file):
        assert response.status_code == 422, response.text
        assert isinstance(response.json()["detail"], str)
    await db.rollback()
    assert await db.scalar(select(func.count()).select_from(Customer)) == 0


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        HELPDESK, *args, env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return int(process.returncode or 0), output.decode()


async def test_cli_imports_with_a_summary(database_url: str, engine: object) -> None:
    env = {**os.environ, "HELPDESK_DATABASE_URL": database_url, "COLUMNS": "100"}
    code, output = await _cli(env, "import", "orders", str(DATA / "orders_bad_rows.csv"))
    assert code == 0, output
    assert "line 4: bad date '2025/13/45'" in output
    assert "│    9 │       2 │       0 │         0 │       6 │" in output
    code, output = await _cli(env, "import", "orders", "/nonexistent.csv")
    assert code == 1 and "no such file" in output
    code, output = await _cli(env, "import", "customers", str(DATA / "customers_sjis.csv"),
                              "--map", "nonsense")
    assert code == 1 and "bad mapping" in output


SHOPIFY_HEADER = "Name,Email,Financial Status,Currency,Total,Created at,Lineitem quantity," \
                 "Lineitem name,Lineitem price,Lineitem sku\n"


async def test_orders_imported_later_add_to_the_stored_totals(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    """Totals kept by adding each batch's new orders equal a recount of every order."""
    headers = await _supervisor(staff)
    first = SHOPIFY_HEADER + "#1,hana@example.jp,paid,JPY,1000,2024-03-01 10:00:00 +0900,1,茶,1000,T1\n"
    later = SHOPIFY_HEADER + (
        "#2,hana@example.jp,paid,JPY,500,2023-01-01 10:00:00 +0900,1,茶,500,T1\n"
        "#3,hana@example.jp,voided,JPY,9999,2025-01-01 10:00:00 +0900,1,壺,9999,T9\n"
        "#4,hana@example.jp,paid,JPY,700,2024-06-01 10:00:00 +0900,1,菓子,700,T2\n"
        "#5,ken@example.jp,paid,JPY,300,2024-02-01 10:00:00 +0900,1,菓子,300,T2\n")
    for body in (first, later):
        response = await upload(http, headers, "orders", "orders.csv", content=body.encode())
        assert response.status_code == 200, response.text
    hana = await _customer_by_email(db, "hana@example.jp")
    profile = (await http.get(f"/api/customers/{hana}", headers=headers)).json()
    assert (profile["orders_count"], profile["total_spent"]) == (3, "2200.00")
    assert profile["first_order_at"].startswith("2023-01-01T01:00:00")
    assert profile["last_order_at"].startswith("2024-06-01T01:00:00")
    ken = await _customer_by_email(db, "ken@example.jp")
    profile = (await http.get(f"/api/customers/{ken}", headers=headers)).json()
    assert (profile["orders_count"], profile["total_spent"]) == (1, "300.00")


async def _import_path(engine: AsyncEngine, path: Path, kind: Kind, *,
                       in_child: bool) -> ImportSummary:
    options = tasks.ImportOptions(parse_process_min_bytes=0 if in_child else 1 << 40)
    positions: list[int] = []
    with path.open("rb") as stream:
        summary = await tasks.import_file(event_sessions(engine), stream, kind=kind,
                                          options=options, progress=positions.append)
        assert not stream.closed  # the caller's stream is handed back open
    assert positions and positions[-1] == size_of(path)
    return summary


def size_of(path: Path) -> int:
    return path.stat().st_size


async def test_a_file_parsed_in_a_child_process_imports_like_one_parsed_here(
        engine: AsyncEngine, db: AsyncSession) -> None:
    """Large files on disk are parsed by a child process: same rows, problems and results."""
    await _import_path(engine, DATA / "customers_sjis.csv", Kind.customers, in_child=True)
    summary = await _import_path(engine, DATA / "orders_bad_rows.csv", Kind.orders, in_child=True)
    assert (summary.rows, summary.created, summary.skipped) == (9, 2, 6)
    assert [(p.line, p.reason) for p in summary.problems][:2] == [
        (3, "no order number"), (4, "bad date '2025/13/45'")]
    again = await _import_path(engine, DATA / "orders_bad_rows.csv", Kind.orders, in_child=False)
    assert (again.rows, again.created, again.unchanged, again.skipped) == (9, 0, 2, 6)
    await db.rollback()
    assert set(await db.scalars(select(Order.number))) == {"A-1", "A-5"}
    await db.rollback()


async def test_a_line_the_child_cannot_read_is_reported_by_number(
        engine: AsyncEngine, tmp_path: Path) -> None:
    broken = tmp_path / "orders.csv"
    too_long = "x" * ((1 << 20) + 1)  # over the CSV reader's field size limit
    broken.write_text(SHOPIFY_HEADER + "#1,a@example.jp,paid,JPY,100,2024-01-01,1,茶,100,T\n"
                      + f"#2,b@example.jp,paid,JPY,100,2024-01-01,1,{too_long},100,T\n")
    with pytest.raises(BadInput, match="line 3: field larger than field limit"):
        await _import_path(engine, broken, Kind.orders, in_child=True)


def test_collection_pauses_while_batches_are_written_and_resumes_after() -> None:
    assert gc.isenabled()
    first, second = tasks.collector_paused(), tasks.collector_paused()
    first.__enter__()
    assert not gc.isenabled()
    second.__enter__()  # a second import writing at the same time
    first.__exit__(None, None, None)
    assert not gc.isenabled()  # the other is still writing
    second.__exit__(None, None, None)
    assert gc.isenabled()
    gc.disable()  # someone else's choice is left alone
    try:
        with tasks.collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        gc.enable()


class _CollectorWatch:
    """Notes, from a thread of its own, whether automatic collection was ever off."""

    def __init__(self) -> None:
        self.seen_off = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            if not gc.isenabled():
                self.seen_off = True
            time.sleep(0)  # hand the GIL back at once

    def __enter__(self) -> "_CollectorWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.mark.parametrize("pause_collector", [False, True], ids=["server", "cli"])
async def test_only_a_process_that_only_imports_pauses_the_collector(
        engine: AsyncEngine, tmp_path: Path, pause_collector: bool) -> None:
    """An upload imports beside the server's live sockets: collection stays on for them."""
    path = tmp_path / "orders.csv"
    path.write_text(SHOPIFY_HEADER + "".join(
        f"#{n},c{n % 300}@example.jp,paid,JPY,100,2024-01-01 10:00:00 +0900,1,茶,100,T1\n"
        for n in range(3000)))
    options = tasks.ImportOptions(pause_collector=pause_collector, parse_process_min_bytes=1 << 40)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # the watching thread looks often while a batch is written
    try:
        with _CollectorWatch() as watch, path.open("rb") as stream:
            summary = await tasks.import_file(event_sessions(engine), stream, kind=Kind.orders,
                                              options=options)
    finally:
        sys.setswitchinterval(interval)
    assert summary.rows == 3000
    assert watch.seen_off is pause_collector
    assert gc.isenabled()


class _RecordsCollector:
    """Notes, as it is unpickled, whether automatic collection was on."""

    seen: ClassVar[list[bool]] = []

    def __getstate__(self) -> object:
        return "state"

    def __setstate__(self, state: object) -> None:
        self.seen.append(gc.isenabled())


def test_batches_from_the_child_are_unpickled_with_collection_paused() -> None:
    receiving, sending = multiprocessing.Pipe(duplex=False)
    sending.send(("done", [_RecordsCollector(), _RecordsCollector()]))
    message = tasks._receive(receiving, Kind.orders, True)
    assert message[0] == "done" and len(message[1]) == 2
    assert _RecordsCollector.seen == [False, False]
    assert gc.isenabled()


def test_pauses_from_many_threads_leave_collection_on_at_the_end() -> None:
    def pause_often() -> None:
        for _ in range(2000):
            with tasks.collector_paused():
                pass

    threads = [threading.Thread(target=pause_often) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert gc.isenabled() and tasks._pauses == 0


def test_batches_cross_from_the_child_whole() -> None:
    tokyo = ZoneInfo("Asia/Tokyo")
    first = IncomingOrder(
        source="shopify", number="#1001", ordered_at=datetime(2024, 5, 1, 9, 30, 15, 123456, tokyo),
        external_id="5001", status="paid", total=Decimal("3520.50"), currency="JPY",
        remote_updated_at=datetime(2024, 5, 2, tzinfo=UTC),
        items=[OrderLine("TEA-001", "有機煎茶 100g", 2, Decimal("1200")),
               OrderLine("", "送料", 1, Decimal("1120.50"))],
        email="a@example.jp", phone="+819012345678", name="佐藤 太郎", name_kana="サトウ タロウ",
        digest="d" * 32)
    orders = [first, IncomingOrder(source="csv", number="A-2",
                                   ordered_at=datetime(2023, 12, 31, 23, 59, tzinfo=UTC))]
    customers = [IncomingCustomer(email="b@example.jp", phone=None, name="鈴木", tags=["VIP", "卸"],
                                  note="メモ")]
    sent = pickle.loads(pickle.dumps(tasks.to_wire(Kind.orders, orders)))
    assert tasks.from_wire(Kind.orders, sent) == orders
    assert tasks.from_wire(Kind.customers, tasks.to_wire(Kind.customers, customers)) == customers
    crossed = tasks.from_wire(Kind.orders, sent)[0]
    assert crossed.ordered_at.tzinfo is UTC and crossed.ordered_at.microsecond == 123456
