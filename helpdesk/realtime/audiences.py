"""Who may see what, read fresh from the database: each user's role, active flag and inboxes."""

from collections.abc import Iterable
from typing import NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime.frames import Audience
from helpdesk.storage import prepared


class _UserAccess(NamedTuple):
    id: int
    role: str
    is_active: bool


_USER = inbox_service.USER
_ROLES_OF_USERS = prepared.Query(select(_USER.c.id, _USER.c.role, _USER.c.is_active)
                                 .where(_USER.c.id.in_(bindparam("user_ids", expanding=True))),
                                 _UserAccess)


async def audiences(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, Audience]:
    """Fresh audiences of ``user_ids`` (role, active flag, inboxes) in two queries; unknown users absent."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = await prepared.rows(session, _ROLES_OF_USERS, {"user_ids": ids})
    inboxes = await inbox_service.inbox_ids_of_users(session, ids)
    found: dict[int, Audience] = {}
    for row in rows:
        assert row.id is not None
        found[row.id] = Audience(row.id, row.role in ("supervisor", "admin"),
                                 frozenset(inboxes.get(row.id, ())), row.is_active)
    return found
