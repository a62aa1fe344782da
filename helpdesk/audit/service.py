"""Appending to the audit log."""

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

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
