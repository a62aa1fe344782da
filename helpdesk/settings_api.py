"""What every admin settings endpoint does, declared once per settings document.

``GET`` reads the document: what was saved, or its defaults when nothing was. ``PUT`` replaces it:
the request model has validated the body; ``check`` adds what needs the database (a named user or
inbox exists); the document's own ``save`` writes it and moves its ``updated_at``, which is how
every reader, in every process, sees the change (no event is published); the audit row names who
changed it and from where; then the request's transaction commits. A document is the
deployment's only one (SLA, CTI) or an inbox's (approval, voice), which 404s for a missing inbox.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.audit import service as audit
from helpdesk.auth.dependencies import client_ip
from helpdesk.auth.models import User
from helpdesk.inboxes import service as inbox_service

Config = TypeVar("Config", bound=BaseModel)
# The key of a document the deployment has one of: its settings row's id, and the audited target.
ONLY = 1


@dataclass(frozen=True)
class Document(Generic[Config]):
    """One admin-edited settings document: how it is read, checked, saved and audited.

    ``load`` and ``save`` take the key (an inbox id, or ``ONLY``); ``save`` flushes and never
    commits. ``action`` and ``target_type`` are the audit row's, and ``detail`` what else of the
    new document it notes (the assignment policy's name, say).
    """

    load: Callable[[AsyncSession, int], Awaitable[Config]]
    save: Callable[[AsyncSession, int, Config], Awaitable[Config]]
    action: str
    target_type: str
    per_inbox: bool = False
    check: Callable[[AsyncSession, int, Config], Awaitable[None]] | None = None
    detail: Callable[[Config], dict[str, Any]] | None = None

    async def read(self, session: AsyncSession, key: int = ONLY) -> Config:
        """The saved document, or its defaults; 404 when it is an inbox's and there is no inbox."""
        if self.per_inbox:
            await inbox_service.inbox_or_404(session, key)
        return await self.load(session, key)

    async def replace(
        self, session: AsyncSession, body: Config, *, actor: User, request: Request, key: int = ONLY
    ) -> Config:
        """Check, save, audit and commit ``body``; the saved document."""
        if self.per_inbox:
            await inbox_service.inbox_or_404(session, key)
        if self.check is not None:
            await self.check(session, key, body)
        saved = await self.save(session, key, body)
        audit.record(session, action=self.action, actor_id=actor.id, actor_email=actor.email,
                     target_type=self.target_type, target_id=key, ip=client_ip(request),
                     **(self.detail(body) if self.detail is not None else {}))
        await session.commit()
        return saved
