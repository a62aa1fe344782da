"""The event catalogue: frames as the pages have always received them, docs/events.md in step
with it, commits that publish only through a wired sessionmaker, and a hub free of domains."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from helpdesk.db import create_sessionmaker
from helpdesk.realtime import events
from helpdesk.realtime.catalogue_doc import document
from helpdesk.realtime.frames import LiveEvent
from helpdesk.realtime.log import event_sessions, live_events_after

ROOT = Path(__file__).resolve().parents[2]


def test_docs_events_md_is_written_from_the_catalogue() -> None:
    written = (ROOT / "docs" / "events.md").read_text()
    assert written == document(), "run: python -m helpdesk.realtime.catalogue_doc > docs/events.md"
    for event in events.catalogue():
        assert f"| `{event.type}` | `{event.__name__}` |" in written


def test_every_type_in_the_contract_is_in_the_catalogue() -> None:
    types = {event.type for event in events.catalogue()}
    contract = {"ticket.created", "ticket.updated", "message.created", "ticket.assigned",
                "call.ringing", "call.answered", "call.ended", "call.missed", "presence.changed",
                "ticket.sla_breached", "message.approval_requested", "message.approved",
                "message.rejected"}
    assert contract <= types
    assert len(types) == len(events.catalogue())  # one class per type


def test_optional_keys_are_left_out_but_a_null_is_sent() -> None:
    queued = events.MessageUpdated(inbox_id=1, ticket_id=2, message_id=3, channel="line",
                                   direction="out", delivery_status="queued", error=None)
    assert json.dumps(queued.data()) == json.dumps({
        "ticket_id": 2, "message_id": 3, "channel": "line", "direction": "out",
        "delivery_status": "queued", "error": None})
    edited = events.MessageUpdated(inbox_id=1, ticket_id=2, message_id=3, channel="line",
                                   direction="in", delivery_status=None, error=None, preview="x",
                                   reactions=None, edited=True)
    assert list(edited.data().items())[-3:] == [("preview", "x"), ("reactions", None), ("edited", True)]
    assert events.TicketUpdated(inbox_id=1, ticket={"id": 5}).data() == {"ticket": {"id": 5}}
    assert events.TicketAssigned(inbox_id=1, ticket={"id": 5}, reason={"policy": "manual"}).data() \
        == {"ticket": {"id": 5}, "reason": {"policy": "manual"}}
    menu = events.CallMenuChosen(inbox_id=4, call_id=1, digit="2", tag="billing")
    assert list(menu.data()) == ["call_id", "digit", "inbox_id", "tag"]


async def test_a_catalogued_event_reaches_the_log_with_its_audience_and_frame(engine: AsyncEngine) -> None:
    own: list[LiveEvent] = []
    writers = event_sessions(engine, publish=own.extend)
    async with writers() as session:
        events.record(session, events.CallAcwStarted(
            inbox_id=None, user_ids=[7], call_id=3, operator_id=7, ticket_id=None,
            started_at="2026-01-01T00:00:00+00:00", limit_seconds=60))
        events.record(session, events.PresenceChanged(
            user_id=7, name="受付", role="operator", status="online", since="2026-01-01T00:00:00+00:00"))
        await session.commit()
    acw, presence = own
    assert (acw.type, acw.inbox_id, acw.user_ids, acw.broadcast) == ("call.acw_started", None, [7], False)
    assert (presence.inbox_id, presence.user_ids, presence.broadcast) == (None, None, True)
    assert acw.text.endswith(',"data":{"call_id":3,"operator_id":7,"ticket_id":null,'
                             '"started_at":"2026-01-01T00:00:00+00:00","limit_seconds":60}}')
    async with create_sessionmaker(engine, read_only=True)() as session:
        logged = await live_events_after(session, acw.seq - 1)
    assert [e.text for e in logged] == [acw.text, presence.text]


async def test_a_session_whose_sessionmaker_has_no_event_log_refuses_to_record(engine: AsyncEngine) -> None:
    async with create_sessionmaker(engine)() as session:
        with pytest.raises(RuntimeError, match="does not write the event log"):
            events.record(session, events.TicketUpdated(inbox_id=None, ticket={}))


async def test_a_rollback_forgets_what_was_recorded(engine: AsyncEngine) -> None:
    own: list[LiveEvent] = []
    async with event_sessions(engine, publish=own.extend)() as session:
        await session.execute(text("SELECT 1"))  # a transaction to roll back, as a service has
        events.record(session, events.TicketUpdated(inbox_id=None, ticket={"n": 1}))
        await session.rollback()
        events.record(session, events.TicketUpdated(inbox_id=None, ticket={"n": 2}))
        await session.commit()
    assert [e.data for e in own] == [{"ticket": {"n": 2}}]


def test_the_hub_and_the_catalogue_import_no_domain_module() -> None:
    allowed = ("helpdesk.config", "helpdesk.db", "helpdesk.prepared", "helpdesk.sqlite",
               "helpdesk.storage", "helpdesk.realtime.bus", "helpdesk.realtime.events",
               "helpdesk.realtime.frames", "helpdesk.realtime.horizon", "helpdesk.realtime.hub",
               "helpdesk.realtime.log", "helpdesk.realtime.models", "helpdesk.realtime.wire",
               "helpdesk.realtime.client")
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, helpdesk.realtime.hub, helpdesk.realtime.events; "
         "print('\\n'.join(m for m in sys.modules if m.startswith(('helpdesk.', 'telephony'))))"],
        capture_output=True, text=True, check=True, cwd=ROOT).stdout.split()
    assert "helpdesk.realtime.hub" in loaded
    assert [m for m in loaded if m != "helpdesk.realtime" and not m.startswith(allowed)] == []
