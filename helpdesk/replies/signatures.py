"""Email signatures: an inbox's shared one and each operator's own, appended to email replies.

A signature follows the reply after the usual ``-- `` line (the operator's own first, then the
inbox's), so the stored reply is exactly what the customer receives and a retry sends the same.
"""

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import User
from helpdesk.db import utcnow
from helpdesk.inboxes.models import Inbox
from helpdesk.replies.models import EmailSignature
from helpdesk.replies.service import fill

MAX_SIGNATURE = 2000
VARIABLES = ["operator_name", "operator_email", "inbox_name", "inbox_email"]
INBOX, PERSONAL = "inbox", "user"
# The line mail readers take as the start of a signature ("-- " alone on a line); the email
# sender sets what follows it apart in the HTML part.
SIGNATURE_DELIMITER = "\n-- \n"


async def text_of(session: AsyncSession, scope: str, owner_id: int) -> str:
    """The signature as written (with its ``{variables}``), or "" when there is none."""
    body = await session.scalar(select(col(EmailSignature.body)).where(
        col(EmailSignature.scope) == scope, col(EmailSignature.owner_id) == owner_id))
    return body or ""


async def inbox_texts(session: AsyncSession) -> dict[int, str]:
    """Every inbox's shared signature by inbox id."""
    rows = (await session.execute(select(col(EmailSignature.owner_id), col(EmailSignature.body))
                                  .where(col(EmailSignature.scope) == INBOX))).all()
    return {owner: body for owner, body in rows}


async def save(session: AsyncSession, scope: str, owner_id: int, body: str) -> None:
    """Set a signature; an empty one is removed. Line endings are kept as ``\\n``."""
    text = body.replace("\r\n", "\n").strip("\n")
    row = await session.scalar(select(EmailSignature).where(
        col(EmailSignature.scope) == scope, col(EmailSignature.owner_id) == owner_id))
    if not text.strip():
        if row is not None:
            await session.delete(row)
        return
    if row is None:
        session.add(EmailSignature(scope=scope, owner_id=owner_id, body=text))
    else:
        row.body, row.updated_at = text, utcnow()


async def for_reply(session: AsyncSession, user: User, inbox: Inbox | None) -> str:
    """What is appended to ``user``'s email reply from ``inbox``, variables filled; "" for none."""
    parts = [await text_of(session, PERSONAL, user.id)] if user.id is not None else []
    if inbox is not None and inbox.id is not None:
        parts.append(await text_of(session, INBOX, inbox.id))
    values = {"operator_name": user.name, "operator_email": user.email,
              "inbox_name": inbox.name if inbox else "",
              "inbox_email": (inbox.email_address or "") if inbox else ""}
    return "\n".join(fill(p, values) for p in parts if p.strip())


def append(body: str, signature: str) -> str:
    """``body`` with ``signature`` after the ``-- `` line mail readers know."""
    if not signature.strip():
        return body
    return body.rstrip() + "\n" + SIGNATURE_DELIMITER + signature
