"""Inbox views an operator named and kept: a name and the inbox's query string."""

from urllib.parse import parse_qsl, urlencode

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk import normalize
from helpdesk.errors import BadInput, Conflict
from helpdesk.tickets.models import SavedView

FIELDS = ("status", "view", "inbox_id", "channel", "tag", "q")
MAX_PER_USER = 30


async def of_user(session: AsyncSession, user_id: int) -> list[SavedView]:
    """The user's saved views, by name."""
    return list(await session.scalars(
        select(SavedView).where(col(SavedView.user_id) == user_id).order_by(col(SavedView.name))))


def clean_query(query: str) -> str:
    """Only the inbox's own filters, in a canonical order (nothing else is kept or replayed)."""
    values = dict(parse_qsl(query))
    return urlencode([(k, values[k][:200]) for k in FIELDS if values.get(k)])


async def save(session: AsyncSession, *, user_id: int, name: str, query: str) -> SavedView:
    """Keep the view under ``name``; 409 when the user already has one by that name."""
    cleaned = normalize.nfkc(name).strip()[:60]
    if not cleaned:
        raise BadInput("name the view")
    if len(await of_user(session, user_id)) >= MAX_PER_USER:
        raise Conflict("you have as many saved views as can be kept; remove one first")
    view = SavedView(user_id=user_id, name=cleaned, query=clean_query(query))
    session.add(view)
    try:
        async with session.begin_nested():
            await session.flush()
    except IntegrityError:
        raise Conflict("you already have a view by that name") from None
    return view


async def remove(session: AsyncSession, *, user_id: int, view_id: int) -> None:
    """Forget one of the user's views (another user's is never touched)."""
    await session.execute(delete(SavedView).where(col(SavedView.id) == view_id,
                                                  col(SavedView.user_id) == user_id))
