"""@mentions in internal notes: the colleagues named are told, live, on their own socket."""

import re

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import normalize
from helpdesk.auth import service as auth
from helpdesk.auth.models import User
from helpdesk.inboxes import service as inbox_service
from helpdesk.realtime import events
from helpdesk.tickets.models import Ticket

_AT = re.compile(r"[@＠]")


def handles(user: User) -> list[str]:
    """How a note may name ``user``: their email's local part, their name with or without spaces."""
    name = normalize.nfkc(user.name)
    found = {user.email.split("@", 1)[0].lower(), name.lower(), name.replace(" ", "").lower()}
    return sorted((h for h in found if h), key=len, reverse=True)


def mentioned(body: str, staff: list[User]) -> list[User]:
    """The staff a note names with ``@``, each once (a handle ends at a space, punctuation or end)."""
    text = normalize.nfkc(body).lower()
    starts = [m.end() for m in _AT.finditer(text)]
    named = []
    for user in staff:
        if any(_names(text, start, handle) for start in starts for handle in handles(user)):
            named.append(user)
    return named


def _names(text: str, start: int, handle: str) -> bool:
    if not text.startswith(handle, start):
        return False
    end = start + len(handle)
    return end == len(text) or not (text[end].isalnum() or text[end] in "._-")


async def notify(session: AsyncSession, ticket: Ticket, *, body: str, message_id: int,
                 actor: User) -> list[int]:
    """Tell the colleagues a note mentions (who may see the ticket, not the author); their ids."""
    staff = [u for u in await auth.all_users(session) if u.is_active and u.id != actor.id]
    members = await inbox_service.memberships(session)
    told = [u.id for u in mentioned(body, staff) if u.id is not None and (
        u.sees_everything or ticket.inbox_id in members.get(u.id, set()))]
    if told:
        events.record(session, events.TicketMentioned(
            user_ids=told, ticket_id=ticket.id, ticket_number=ticket.number,
            message_id=message_id, by=actor.name, preview=body[:140]))
    return told
