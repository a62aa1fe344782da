"""Appending to the audit log."""

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.audit.models import AuditLog


def record(
    session: AsyncSession,
    *,
    action: str,
    actor_id: int | None = None,
    actor_email: str | None = None,
    target_type: str | None = None,
    target_id: int | str | None = None,
    ip: str | None = None,
    **detail: Any,
) -> None:
    """Add one audit row to the current transaction."""
    session.add(AuditLog(
        action=action, actor_id=actor_id, actor_email=actor_email, target_type=target_type,
        target_id=str(target_id) if target_id is not None else None, ip=ip, detail=detail,
    ))


async def page(
    session: AsyncSession, *, before: int | None, action: str | None, actor: str | None,
    limit: int = 100,
) -> tuple[list[AuditLog], int | None]:
    """Newest entries first, by keyset on id; returns the id to continue before."""
    stmt = select(AuditLog).order_by(col(AuditLog.id).desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(col(AuditLog.id) < before)
    if action:
        stmt = stmt.where(col(AuditLog.action).startswith(action, autoescape=True))
    if actor:
        stmt = stmt.where(col(AuditLog.actor_email).contains(actor.lower(), autoescape=True))
    rows = list(await session.scalars(stmt))
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1].id if more and rows else None)
