"""Inboxes and who works them."""

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from sqlalchemy import ColumnElement, Select, Table, bindparam, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.auth.models import User
from helpdesk.config import DEFAULT_REGION
from helpdesk.errors import BadInput, NotFound
from helpdesk.inboxes.models import Inbox, InboxMember
from helpdesk.storage import prepared


async def inbox_by_name(session: AsyncSession, name: str) -> Inbox:
    """The inbox called ``name``; 422 when there is none."""
    inbox = await session.scalar(select(Inbox).where(col(Inbox.name) == name))
    if inbox is None:
        raise BadInput(f"unknown inbox: {name}")
    return inbox


MEMBER: Table = InboxMember.__table__  # type: ignore[attr-defined]
USER: Table = User.__table__  # type: ignore[attr-defined]
class _Membership(NamedTuple):
    user_id: int
    inbox_id: int


_INBOXES_OF_USERS = prepared.Query(select(MEMBER.c.user_id, MEMBER.c.inbox_id)
                                   .where(MEMBER.c.user_id.in_(bindparam("user_ids", expanding=True))),
                                   _Membership)


async def inbox_ids_of(session: AsyncSession, user_id: int) -> set[int]:
    """The inboxes a user is a member of."""
    rows = await session.scalars(
        select(col(InboxMember.inbox_id)).where(col(InboxMember.user_id) == user_id)
    )
    return set(rows)


async def inbox_ids_of_users(session: AsyncSession, user_ids: Iterable[int]) -> dict[int, set[int]]:
    """The inboxes of each of ``user_ids``, in one query (users of no inbox are absent)."""
    rows = await prepared.rows(session, _INBOXES_OF_USERS, {"user_ids": list(user_ids)})
    found: dict[int, set[int]] = {}
    for row in rows:
        found.setdefault(row.user_id, set()).add(row.inbox_id)
    return found


async def visible_inbox_ids(session: AsyncSession, user: User) -> set[int] | None:
    """The inboxes whose tickets ``user`` may see; None means all of them."""
    if user.sees_everything:
        return None
    assert user.id is not None
    return await inbox_ids_of(session, user.id)


async def inbox_or_404(session: AsyncSession, inbox_id: int) -> Inbox:
    """The inbox an admin page or API names; 404 when there is none."""
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None:
        raise NotFound("inbox not found")
    return inbox


async def existing_users(session: AsyncSession, user_ids: set[int], field: str) -> None:
    """422 naming ``field`` unless every id is an existing user (an inbox's settings name them)."""
    known = set(await session.scalars(select(col(User.id)).where(col(User.id).in_(user_ids))))
    if known != user_ids:
        raise BadInput(f"{field}: no such user {sorted(user_ids - known)[0]}")


async def works_in(session: AsyncSession, user: User, inbox_id: int) -> bool:
    """Whether ``user`` may see what is in the inbox: the one check behind every ticket or call
    that is shown, or else answered with a 404 that does not reveal it exists."""
    visible = await visible_inbox_ids(session, user)
    return visible is None or inbox_id in visible


async def add_member(session: AsyncSession, *, inbox_id: int, user_id: int) -> None:
    """Make ``user_id`` a member of ``inbox_id`` (no-op if already)."""
    if await session.get(InboxMember, (inbox_id, user_id)) is None:
        session.add(InboxMember(inbox_id=inbox_id, user_id=user_id))


async def join_named(session: AsyncSession, *, user_id: int, names: Iterable[str]) -> None:
    """Make a user a member of the inboxes called ``names`` (each must exist)."""
    for name in names:
        inbox = await inbox_by_name(session, name)
        assert inbox.id is not None
        await add_member(session, inbox_id=inbox.id, user_id=user_id)


async def create_inbox(
    session: AsyncSession, *, name: str, email_address: str | None = None,
    phone_number: str | None = None,
) -> Inbox:
    """A new inbox."""
    inbox = Inbox(name=name, email_address=email_address, phone_number=phone_number)
    session.add(inbox)
    await session.flush()
    return inbox


@dataclass(frozen=True)
class InboxRef:
    """An inbox's id and name: all a phone call needs to know of it."""

    id: int
    name: str


INBOX: Table = Inbox.__table__  # type: ignore[attr-defined]
class _NumberedInbox(NamedTuple):
    id: int
    name: str
    phone_number: str | None


_NUMBERED_OR_DEFAULT = prepared.Query(
    select(INBOX.c.id, INBOX.c.name, INBOX.c.phone_number)
    .where(or_(INBOX.c.phone_number.is_not(None), INBOX.c.name == "default"))
    .order_by(INBOX.c.id), _NumberedInbox)


@lru_cache(maxsize=1024)
def _stored_number(number: str | None, region: str) -> str | None:
    # Inboxes' own numbers repeat on every call: normalise each spelling once per process.
    return normalize.phone(number, region)


async def inbox_ref_for_number(session: AsyncSession, number: str | None, *,
                               region: str = DEFAULT_REGION) -> InboxRef:
    """The inbox whose phone number is ``number`` (any spelling), else ``default``, in one query."""
    wanted = normalize.phone(number, region)
    fallback = None
    for inbox in await prepared.rows(session, _NUMBERED_OR_DEFAULT):
        if wanted is not None and inbox.phone_number is not None and \
                _stored_number(inbox.phone_number, region) == wanted:
            return InboxRef(inbox.id, inbox.name)
        if inbox.name == "default":
            fallback = InboxRef(inbox.id, inbox.name)
    if fallback is None:
        raise BadInput("unknown inbox: default")
    return fallback


async def inbox_for_number(session: AsyncSession, number: str | None, *,
                           region: str = DEFAULT_REGION) -> Inbox:
    """The inbox whose phone number is ``number`` (any spelling), else the ``default`` inbox."""
    found = await inbox_ref_for_number(session, number, region=region)
    inbox = await session.get(Inbox, found.id)
    assert inbox is not None
    return inbox




def active_members(inbox_id: int | ColumnElement[int]) -> Select[tuple[int]]:
    """A subquery of the active users who work ``inbox_id`` (a value or a bound parameter)."""
    # Table columns, not ORM attributes: the statements this goes into stay plain Core.
    return (select(MEMBER.c.user_id).join(USER, USER.c.id == MEMBER.c.user_id)
            .where(MEMBER.c.inbox_id == inbox_id, USER.c.is_active.is_(True)))


async def inbox_by_address(session: AsyncSession, addresses: Iterable[str]) -> Inbox | None:
    """The inbox whose email address is among ``addresses`` (lower-case), if any."""
    wanted = [a for a in addresses if a]
    if not wanted:
        return None
    return await session.scalar(
        select(Inbox).where(func.lower(col(Inbox.email_address)).in_(wanted)).order_by(col(Inbox.id))
        .limit(1))


async def all_inboxes(session: AsyncSession) -> list[Inbox]:
    """Every inbox, by name."""
    return list(await session.scalars(select(Inbox).order_by(col(Inbox.name))))


async def inboxes_by_id(session: AsyncSession, ids: set[int] | None) -> list[Inbox]:
    """The inboxes in ``ids`` (None: all), by name."""
    stmt = select(Inbox).order_by(col(Inbox.name))
    if ids is not None:
        stmt = stmt.where(col(Inbox.id).in_(ids))
    return list(await session.scalars(stmt))


async def memberships(session: AsyncSession) -> dict[int, set[int]]:
    """Each user's inbox ids."""
    found: dict[int, set[int]] = {}
    for inbox_id, user_id in (await session.execute(
            select(col(InboxMember.inbox_id), col(InboxMember.user_id)))).all():
        found.setdefault(user_id, set()).add(inbox_id)
    return found


async def set_memberships(session: AsyncSession, *, user_id: int, inbox_ids: set[int]) -> None:
    """Make ``user_id`` a member of exactly ``inbox_ids``."""
    known = set(await session.scalars(select(col(Inbox.id)).where(col(Inbox.id).in_(inbox_ids))))
    if known != inbox_ids:
        raise BadInput("inbox: no such inbox")
    current = await inbox_ids_of(session, user_id)
    for inbox_id in inbox_ids - current:
        session.add(InboxMember(inbox_id=inbox_id, user_id=user_id))
    if current - inbox_ids:
        await session.execute(delete(InboxMember).where(
            col(InboxMember.user_id) == user_id, col(InboxMember.inbox_id).in_(current - inbox_ids)))


async def set_inbox_members(session: AsyncSession, *, inbox_id: int, user_ids: set[int]) -> None:
    """Make exactly ``user_ids`` the members of ``inbox_id``."""
    known = set(await session.scalars(select(col(User.id)).where(col(User.id).in_(user_ids))))
    if known != user_ids:
        raise BadInput("member: no such user")
    current = set(await session.scalars(
        select(col(InboxMember.user_id)).where(col(InboxMember.inbox_id) == inbox_id)))
    for user_id in user_ids - current:
        session.add(InboxMember(inbox_id=inbox_id, user_id=user_id))
    if current - user_ids:
        await session.execute(delete(InboxMember).where(
            col(InboxMember.inbox_id) == inbox_id, col(InboxMember.user_id).in_(current - user_ids)))
