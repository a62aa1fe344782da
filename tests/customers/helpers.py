"""Helpers shared by the customer tests: uploads and database snapshots."""

from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

DATA = Path(__file__).resolve().parent.parent / "data"
SNAPSHOT_TABLES = ("customer", "customer_identity", "order", "order_item", "search_entry")


async def upload(http: httpx.AsyncClient, headers: dict[str, str], kind: str, name: str,
                 content: bytes | None = None, **form: str) -> httpx.Response:
    """POST a CSV to the import endpoint of ``kind`` (customers or orders)."""
    body = content if content is not None else (DATA / name).read_bytes()
    return await http.post(f"/api/{kind}/import", headers=headers, data=form,
                           files={"file": (name, body, "text/csv")})


async def snapshot(db: AsyncSession) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the customer tables, to show an import changed nothing."""
    await db.rollback()
    found = {}
    for table in SNAPSHOT_TABLES:
        rows = await db.execute(text(f'SELECT * FROM "{table}" ORDER BY id'))
        found[table] = [tuple(r) for r in rows.all()]
    await db.rollback()  # release SQLite's write lock for the server
    return found
