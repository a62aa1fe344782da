"""``db.construct`` builds the same row as the model's constructor, without its per-field cost."""

from datetime import UTC, datetime

from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.calls.models import Call, CallDirection, CallState, Routed
from helpdesk.inboxes import service as inbox_service
from helpdesk.storage.construct import construct
from helpdesk.storage.sessions import begin_write

STARTED = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)


def _given() -> dict[str, object]:
    return {"provider": "twilio", "call_id": "CA-1", "direction": CallDirection.inbound,
            "from_number": "+81312345678", "inbox_id": 1, "started_at": STARTED}


def test_fields_and_defaults_match_the_constructor() -> None:
    built, reference = construct(Call, **_given()), Call(**_given())
    assert built.model_dump() == reference.model_dump()
    assert built.state == CallState.ringing and built.offered_user_ids == []
    # Defaults made by a factory are made afresh for each instance.
    assert built.offered_user_ids is not construct(Call, **_given()).offered_user_ids


def test_later_assignments_are_tracked() -> None:
    built = construct(Call, **_given())
    built.routed = Routed.dial
    history = inspect(built).attrs.routed.history
    assert inspect(built).transient and history.added == [Routed.dial]


async def test_a_constructed_row_is_written_and_read_back_whole(db: AsyncSession) -> None:
    await begin_write(db)
    inbox = await inbox_service.create_inbox(db, name="sales", phone_number="050-1234-5678")
    built = construct(Call, **{**_given(), "inbox_id": inbox.id, "customer_id": None})
    built.offered_user_ids = [3, 5]
    db.add(built)
    await db.commit()
    db.expunge_all()
    loaded = await db.get(Call, built.id)
    assert loaded is not None
    assert {name: getattr(loaded, name) for name in Call.model_fields} == {
        name: getattr(built, name) for name in Call.model_fields}
