"""Sessions for pages that render what a write just committed."""

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession


def fresh_reader(request: Request) -> AsyncSession:
    """A new read session, for rendering a page after the request's write session committed.

    Neither of the request's own sessions fits: its read session began before the commit (on
    SQLite it still sees the old snapshot), and reading through the write session would begin a
    new write transaction that holds SQLite's write lock while the page renders and is sent.
    """
    session: AsyncSession = request.app.state.read_sessionmaker()
    return session
