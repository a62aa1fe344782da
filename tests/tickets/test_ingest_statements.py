"""Ingest's statement budget: counted on a real engine, so a new query on the path shows up here."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.tickets.models import Channel, InboundMessage, Sender
from tests.support.inbound import inbound

# A new customer's first message: the retry check, the inbox with its SLA settings and
# assignment policy (one statement), the identity look-up (email and phone in one), the customer,
# its identities, its search entry, the thread look-up, the ticket number, the ticket, its
# status counter, the message, the subject's and the message's search entries (one executemany),
# the event seq, the events and the access version.
NEW_CONVERSATION = 15
# The same customer again on the API channel: the thread is found and locked, the ticket's tags
# are read for the ticket.updated event, the message and its search entry are inserted, and the
# ticket's new version is written with the events at commit.
FOLLOW_UP = 13


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(("BEGIN", "SELECT pg_advisory", "COMMIT")):
            statements.append(statement.split("\n")[0][:100])

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)


async def test_a_new_conversation_takes_a_bounded_number_of_statements(
        engine: AsyncEngine, db: AsyncSession) -> None:
    await inbound(db, "warm-up", email="someone@example.jp")  # settings rows, counters
    with counted(engine) as statements:
        await inbound(db, "first", email="new@example.jp", phone="090-1111-2222")
    assert len(statements) <= NEW_CONVERSATION, "\n".join(statements)


async def test_a_follow_up_and_a_retry_take_a_bounded_number_of_statements(
        engine: AsyncEngine, db: AsyncSession) -> None:
    from helpdesk.storage.sessions import begin_write
    from helpdesk.tickets import ingest as ticket_ingest

    async def send(key: str) -> None:
        await begin_write(db)
        await ticket_ingest.ingest(db, InboundMessage(
            channel=Channel.api, external_id=key, conversation_key="thread-1",
            sender=Sender(name="山田 太郎", email="taro@example.jp"), body_text="追加の質問です"))
        await db.commit()

    await send("one")
    with counted(engine) as statements:
        await send("two")
    assert len(statements) <= FOLLOW_UP, "\n".join(statements)
    with counted(engine) as statements:
        await send("two")  # a provider's retry
    assert len(statements) == 1, statements  # the retry check, nothing else
