"""A customer's latest calls for the profile: the prepared statements read what the plain query reads,
and their row follows CallPublic."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from helpdesk.auth.models import Role
from helpdesk.calls import recent
from helpdesk.calls.models import Call, CallDirection, CallPublic, CallState
from helpdesk.customers.models import Customer
from helpdesk.inboxes.models import Inbox
from helpdesk.profiles.service import ProfileScope
from helpdesk.storage.sessions import begin_write
from tests.support.staff import Staff


async def _calls(db: AsyncSession) -> tuple[int, int, int]:
    """Fourteen calls of one customer over two inboxes (some started at the same instant), and
    one of somebody else."""
    await begin_write(db)
    one, two = Inbox(name="recent-one"), Inbox(name="recent-two")
    customer, other = Customer(name="山田 太郎"), Customer(name="佐藤 花子")
    db.add_all([one, two, customer, other])
    await db.flush()
    assert one.id and two.id and customer.id and other.id
    began = datetime(2026, 12, 1, 9, 0, 0, 123456, tzinfo=UTC)
    for n in range(14):
        started = began + timedelta(minutes=n // 2)
        db.add(Call(provider="twilio", call_id=f"recent-{n}", direction=CallDirection.inbound,
                    from_number="090-1234-5678", to_number="+815012345678",
                    inbox_id=one.id if n % 3 else two.id, customer_id=customer.id,
                    started_at=started, state=CallState.ended,
                    answered_at=started + timedelta(seconds=7) if n % 2 else None,
                    ended_at=started + timedelta(seconds=70), cause=None if n % 2 else "no-answer"))
    db.add(Call(provider="twilio", call_id="someone-else", direction=CallDirection.inbound,
                from_number="03-0000-0000", to_number="+815012345678", inbox_id=one.id,
                customer_id=other.id, started_at=began))
    await db.commit()
    return customer.id, one.id, two.id


async def test_recent_calls_read_what_the_plain_query_reads_in_every_scope(
        db: AsyncSession, staff: Staff) -> None:
    customer_id, one, two = await _calls(db)
    member = await staff.create("member", inboxes=["recent-two"])
    boss = await staff.create("boss", Role.supervisor)
    scopes = [(ProfileScope(None, None), None), (ProfileScope(None, {one}), {one}),
              (ProfileScope(None, set()), set()), (ProfileScope(member, None), {two}),
              (ProfileScope(boss, None), None)]
    for scope, visible in scopes:
        ours = await recent.recent_calls(db, customer_id, scope)
        stmt = select(Call).where(col(Call.customer_id) == customer_id)
        if visible is not None:
            stmt = stmt.where(col(Call.inbox_id).in_(visible))
        plain = await db.scalars(stmt.order_by(col(Call.started_at).desc(), col(Call.id).desc())
                                 .limit(recent.RECENT_CALLS))
        assert ours == [CallPublic.model_validate(c).model_dump(mode="json", by_alias=True)
                        for c in plain], scope
    everyone = await recent.recent_calls(db, customer_id, ProfileScope(None, None))
    assert len(everyone) == recent.RECENT_CALLS
    assert everyone[0]["call_id"] == "recent-13" and everyone[0]["from"] == "090-1234-5678"
    assert len(await recent.recent_calls(db, customer_id, ProfileScope(member, None))) == 5


def test_the_recent_call_row_follows_call_public() -> None:
    assert recent.columns_read_by(CallPublic) == recent.RecentCallRow._fields


class _Wider(CallPublic):
    user_label: str | None = None


class _Renamed(CallPublic):
    to: str = Field(validation_alias="dialled_number")


@pytest.mark.parametrize("model", [_Wider, _Renamed])
def test_a_field_added_to_or_renamed_in_call_public_is_noticed(model: type[CallPublic]) -> None:
    assert recent.columns_read_by(model) != recent.RecentCallRow._fields
