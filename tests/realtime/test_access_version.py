"""The access version changes with every change of who may see what, however it is made."""

from sqlalchemy import delete, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role, User
from helpdesk.inboxes.models import InboxMember
from helpdesk.realtime import log as events
from helpdesk.storage.sessions import begin_write
from tests.support.staff import Staff


async def _version(db: AsyncSession) -> int | None:
    await db.commit()  # a fresh snapshot
    return await events.access_version(db)


async def test_membership_role_and_active_changes_move_the_version(db: AsyncSession, staff: Staff) -> None:
    operator = await staff.create("op", Role.operator, inboxes=["default"])
    seen = [await _version(db)]
    assert seen[0] is not None
    changes = [
        delete(InboxMember).where(InboxMember.user_id == operator.id),  # type: ignore[arg-type]
        text("INSERT INTO inbox_member (inbox_id, user_id) SELECT id, :u FROM inbox WHERE name = 'default'"),
        update(User).where(User.id == operator.id).values(role=Role.supervisor),  # type: ignore[arg-type]
        update(User).where(User.id == operator.id).values(is_active=False),  # type: ignore[arg-type]
    ]
    for change in changes:
        await begin_write(db)
        await db.execute(change, {"u": operator.id})
        await db.commit()
        seen.append(await _version(db))
    assert len(set(seen)) == len(seen), seen  # every change gave a new value


async def test_other_changes_leave_the_version_alone(db: AsyncSession, staff: Staff) -> None:
    operator = await staff.create("op", Role.operator, inboxes=["default"])
    before = await _version(db)
    await begin_write(db)
    await db.execute(update(User).where(User.id == operator.id).values(name="改名"))  # type: ignore[arg-type]
    await db.commit()
    assert await _version(db) == before
