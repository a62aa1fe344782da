"""Who may see what, read fresh from the database: each user's role, active flag and inboxes."""

from collections.abc import Iterable

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import prepared
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime.frames import Audience

_ROLES_OF_USERS = (select(inbox_service.USER.c.id, inbox_service.USER.c.role, inbox_service.USER.c.is_active)
                   .where(inbox_service.USER.c.id.in_(bindparam("user_ids", expanding=True))))


async def audiences(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, Audience]:
    """Fresh audiences of ``user_ids`` (role, active flag, inboxes) in two queries; unknown users absent."""
    ids = list(set(user_ids))
    if not ids:
        return {}
    rows = await prepared.rows(session, _ROLES_OF_USERS, {"user_ids": ids})
    inboxes = await inbox_service.inbox_ids_of_users(session, ids)
    found: dict[int, Audience] = {}
    for uid, role, active in rows:
        assert uid is not None
        found[uid] = Audience(uid, role in ("supervisor", "admin"), frozenset(inboxes.get(uid, ())),
                              active)
    return found
