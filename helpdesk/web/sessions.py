"""Sessions for pages that render what a write just committed."""

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.storage import sessions


def fresh_reader(request: Request) -> AsyncSession:
    """A new read session opened after the request's write session committed.

    Which session to use when: ``helpdesk.storage.sessions``.
    """
    return sessions.fresh_reader(request.app.state.read_sessionmaker)
