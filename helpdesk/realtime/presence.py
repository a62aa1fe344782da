"""Presence (online / away / offline), kept in the database so every process agrees: one row per
open socket (renewed by its process's heartbeat) and one status per user, recorded as
``presence.changed`` whenever it moves."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, Table, delete, exists, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.realtime import events
from helpdesk.realtime.models import Presence, PresenceConnection, PresencePublic, PresenceStatus
from helpdesk.storage.locks import serialize_on


def _combined(statuses: Iterable[str]) -> PresenceStatus:
    """A user is online if any live connection says so, away if one says away, else offline."""
    found = set(statuses)
    for status in (PresenceStatus.online, PresenceStatus.away):
        if status in found:
            return status
    return PresenceStatus.offline


async def refresh_presence(session: AsyncSession, user_id: int, now: datetime) -> None:
    """Recompute a user's status from their live connections; record ``presence.changed`` if it moved."""
    await serialize_on(session, f"presence:{user_id}")
    statuses = await session.scalars(select(col(PresenceConnection.status)).where(
        col(PresenceConnection.user_id) == user_id, col(PresenceConnection.expires_at) > now))
    status = _combined(statuses)
    row = await session.get(Presence, user_id, populate_existing=True)
    if row is None:
        if status == PresenceStatus.offline:
            return
        row = Presence(user_id=user_id, status=status, since=now)
        session.add(row)
    elif row.status == status:
        return
    else:
        row.status, row.since = status, now
    user = (await session.execute(
        select(col(User.name), col(User.role)).where(col(User.id) == user_id))).one_or_none()
    if user is None:
        return
    events.record(session, events.PresenceChanged(
        user_id=user_id, name=user.name, role=str(user.role), status=str(status),
        since=now.isoformat()))


async def connect(
    session: AsyncSession, *, connection_id: str, user_id: int, node: str, now: datetime,
    ttl: timedelta,
) -> None:
    """A socket opened: it counts as online until it closes (plus grace) or its process dies."""
    session.add(PresenceConnection(id=connection_id, user_id=user_id, node=node,
                                   status=PresenceStatus.online, connected_at=now,
                                   expires_at=now + ttl))
    await session.flush()
    await refresh_presence(session, user_id, now)


async def set_status(
    session: AsyncSession, *, connection_id: str, user_id: int, status: PresenceStatus,
    now: datetime,
) -> None:
    """The user said online / away / offline on this socket."""
    await session.execute(update(PresenceConnection).where(col(PresenceConnection.id) == connection_id)
                          .values(status=status))
    await refresh_presence(session, user_id, now)


async def disconnect(session: AsyncSession, *, connection_id: str, now: datetime,
                     grace: timedelta) -> None:
    """A socket closed: it keeps counting for ``grace`` (a reload or reconnect stays online)."""
    await session.execute(update(PresenceConnection).where(col(PresenceConnection.id) == connection_id)
                          .values(closed=True, expires_at=now + grace))


async def heartbeat_and_sweep(
    session: AsyncSession, *, node: str, now: datetime, ttl: timedelta,
    live: dict[str, tuple[int, PresenceStatus]],
) -> None:
    """Keep this process's open sockets alive, then turn lapsed users offline (or away).

    ``live`` maps this process's open connection ids to (user id, status). Every process runs
    this; the lock makes the runs take turns, so a change is recorded once.
    """
    await serialize_on(session, "presence:sweep")
    ids = list(live)
    result = await session.execute(
        update(PresenceConnection).where(col(PresenceConnection.id).in_(ids))
        .values(expires_at=now + ttl))
    # Rows this process left open but no longer holds (a failed disconnect write) start lapsing.
    await session.execute(
        update(PresenceConnection)
        .where(col(PresenceConnection.node) == node, col(PresenceConnection.closed).is_(False),
               col(PresenceConnection.id).not_in(ids))
        .values(closed=True))
    touched: set[int] = set()
    if getattr(result, "rowcount", len(live)) < len(live):
        touched |= await _restore_connections(session, node=node, now=now, ttl=ttl, live=live)
    lapsed = select(col(PresenceConnection.user_id)).where(col(PresenceConnection.expires_at) <= now)
    touched |= set(await session.scalars(lapsed.distinct()))
    still_live = exists().where(col(PresenceConnection.user_id) == Presence.user_id,
                                col(PresenceConnection.expires_at) > now)
    touched |= set(await session.scalars(select(col(Presence.user_id)).where(
        col(Presence.status) != PresenceStatus.offline, ~still_live)))
    await session.execute(delete(PresenceConnection).where(col(PresenceConnection.expires_at) <= now))
    for user_id in sorted(touched):
        await refresh_presence(session, user_id, now)


async def _restore_connections(
    session: AsyncSession, *, node: str, now: datetime, ttl: timedelta,
    live: dict[str, tuple[int, PresenceStatus]],
) -> set[int]:
    """Put back rows of open sockets that lapsed while this process was stalled."""
    known = set(await session.scalars(select(col(PresenceConnection.id)).where(
        col(PresenceConnection.id).in_(list(live)))))
    users: set[int] = set()
    existing_users = set(await session.scalars(select(col(User.id)).where(
        col(User.id).in_([uid for uid, _ in live.values()]))))
    for connection_id, (user_id, status) in live.items():
        if connection_id not in known and user_id in existing_users:
            session.add(PresenceConnection(id=connection_id, user_id=user_id, node=node,
                                           status=status, connected_at=now, expires_at=now + ttl))
            users.add(user_id)
    await session.flush()
    return users


PRESENCE: Table = Presence.__table__  # type: ignore[attr-defined]


def online_query(candidates: Select[Any] | None = None) -> Select[tuple[int]]:
    """A select of the users online now, among ``candidates`` (a select of user ids) when given."""
    stmt = select(PRESENCE.c.user_id).where(PRESENCE.c.status == PresenceStatus.online.value)
    if candidates is not None:
        stmt = stmt.where(PRESENCE.c.user_id.in_(candidates))
    return stmt


async def online_among(session: AsyncSession, candidates: Select[Any] | None = None) -> list[int]:
    """The users online now, among ``candidates`` (a select of user ids) when given."""
    return list(await session.scalars(online_query(candidates).order_by(PRESENCE.c.user_id)))


async def presence_list(session: AsyncSession) -> list[PresencePublic]:
    """Every active staff member with their status (offline when never seen)."""
    rows = await session.execute(
        select(col(User.id), col(User.name), col(User.role), col(Presence.status), col(Presence.since))
        .outerjoin(Presence, col(Presence.user_id) == col(User.id))
        .where(col(User.is_active).is_(True)).order_by(col(User.name), col(User.id)))
    return [PresencePublic(user_id=uid, name=name, role=str(role),
                           status=status or PresenceStatus.offline, since=since)
            for uid, name, role, status, since in rows.all()]

