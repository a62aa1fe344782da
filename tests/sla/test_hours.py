"""Business-time arithmetic and the due-time rules, at fixed instants (no clock read)."""

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from helpdesk.sla import hours
from helpdesk.sla import service as sla
from helpdesk.sla.hours import (
    Calendar,
    add_business_minutes,
    business_minutes_between,
    shift_business_minutes,
)
from helpdesk.sla.models import SlaConfig, SlaTarget
from helpdesk.tickets.models import Channel, Priority, Status, Ticket

TOKYO = ZoneInfo("Asia/Tokyo")


def jst(*args: int) -> datetime:
    return datetime(*args, tzinfo=TOKYO)


def policy(**changes: object) -> sla.Policy:
    config = SlaConfig.model_validate({
        "targets": [{"priority": "normal", "first_response_minutes": 120, "next_response_minutes": 60,
                     "resolution_minutes": 600}], **changes})
    return sla.Policy(config=config, calendar=sla.calendar_of(config))


def ticket(**values: object) -> Ticket:
    return Ticket(**{"number": 1, "channel": Channel.email, "inbox_id": 1, "token": "t", **values})


def test_a_friday_evening_deadline_skips_the_weekend_and_coming_of_age_day() -> None:
    # 2027-01-08 is a Friday; 2027-01-11 (Monday) is 成人の日, a public holiday.
    calendar = policy().calendar
    due = add_business_minutes(calendar, jst(2027, 1, 8, 17, 0), 120)
    assert due == jst(2027, 1, 12, 10, 0)
    assert business_minutes_between(calendar, jst(2027, 1, 8, 17, 0), due) == 120


def test_without_public_holidays_the_monday_counts() -> None:
    calendar = policy(public_holidays=None).calendar
    assert add_business_minutes(calendar, jst(2027, 1, 8, 17, 0), 120) == jst(2027, 1, 11, 10, 0)


def test_the_shops_own_closed_days_are_skipped() -> None:
    # 年末年始: closed 2026-12-29 to 2027-01-04 (01-01 is a holiday anyway).
    closed = [f"2026-12-{d}" for d in (29, 30, 31)] + [f"2027-01-0{d}" for d in (2, 3, 4)]
    calendar = policy(closed_days=closed).calendar
    assert calendar.is_closed(date(2026, 12, 30)) and not calendar.is_closed(date(2027, 1, 5))
    due = add_business_minutes(calendar, jst(2026, 12, 28, 17, 30), 60)
    assert due == jst(2027, 1, 5, 9, 30)


def test_a_message_at_night_starts_counting_at_opening_time() -> None:
    calendar = policy(hours={"mon": [["09:00", "12:00"], ["13:00", "18:00"]]}).calendar
    # Sunday night in UTC terms; the lunch break does not count.
    start = datetime(2027, 1, 17, 12, 0, tzinfo=UTC)  # 21:00 JST Sunday
    assert add_business_minutes(calendar, start, 200) == jst(2027, 1, 18, 13, 20)


def test_a_calendar_that_never_opens_gives_no_deadline() -> None:
    shut = Calendar(timezone="Asia/Tokyo", hours={}, public_holidays=None)
    assert add_business_minutes(shut, jst(2027, 1, 8, 9), 10) is None
    mondays = sla.calendar_of(SlaConfig(hours={"mon": [["09:00", "18:00"]]}))
    assert add_business_minutes(mondays, jst(2027, 1, 8, 9), 10) == jst(2027, 1, 18, 9, 10)


def test_on_hold_pauses_the_clock_and_resuming_moves_deadlines_on() -> None:
    p = policy()
    t = ticket()
    sla.on_opened(p, t, jst(2027, 1, 8, 17, 0))
    assert t.first_response_due_at == jst(2027, 1, 12, 10, 0)
    assert t.sla_due_at == t.first_response_due_at and t.sla_check_at == t.first_response_due_at
    t.status = Status.pending  # 30 business minutes used, 90 left
    sla.on_status(p, t, Status.unhandled, jst(2027, 1, 8, 17, 30))
    assert t.sla_due_at is None and t.sla_check_at is None
    assert sla.newly_breached(t, jst(2027, 1, 20, 12, 0)) == []  # never breached while on hold
    t.status = Status.in_progress
    sla.on_status(p, t, Status.pending, jst(2027, 1, 13, 9, 0))
    assert t.first_response_due_at == jst(2027, 1, 13, 10, 30)
    assert t.sla_due_at == jst(2027, 1, 13, 10, 30)


def test_replies_and_new_messages_move_the_next_response_deadline() -> None:
    p = policy()
    t = ticket()
    sla.on_opened(p, t, jst(2027, 1, 13, 10, 0))
    t.first_response_at = jst(2027, 1, 13, 10, 30).astimezone(UTC)
    sla.on_reply(t)
    assert t.sla_due_at == t.resolution_due_at == jst(2027, 1, 14, 11, 0)
    sla.on_inbound(p, t, Status.in_progress, jst(2027, 1, 13, 17, 30))
    assert t.next_response_due_at == jst(2027, 1, 14, 9, 30)
    assert t.sla_due_at == jst(2027, 1, 14, 9, 30)
    assert sla.newly_breached(t, jst(2027, 1, 14, 9, 31)) == ["next_response"]
    sla.on_reply(t)
    assert t.next_response_due_at is None


def test_a_channel_target_wins_over_the_priority_target() -> None:
    p = policy(targets=[
        {"priority": "normal", "first_response_minutes": 120, "next_response_minutes": 60},
        {"priority": "normal", "channel": "phone", "first_response_minutes": 10,
         "next_response_minutes": 10}])
    assert p.target(ticket()) == SlaTarget(priority=Priority.normal, first_response_minutes=120,
                                           next_response_minutes=60)
    assert p.target(ticket(channel=Channel.phone)).first_response_minutes == 10  # type: ignore[union-attr]


def test_shifting_earlier_walks_back_over_closed_days_and_the_lunch_break() -> None:
    calendar = policy(hours={d: [["09:00", "12:00"], ["13:00", "18:00"]]
                             for d in ("mon", "tue", "wed", "thu", "fri")}).calendar
    # Wednesday 2027-01-13 10:00 less 4 business hours: 1 h of Wednesday morning, then Tuesday
    # from 18:00 back to 15:00.
    assert shift_business_minutes(calendar, jst(2027, 1, 13, 10, 0), -240) == jst(2027, 1, 12, 15, 0)
    # Across the lunch break and back over the holiday Monday to Friday evening.
    assert shift_business_minutes(calendar, jst(2027, 1, 12, 9, 30), -60) == jst(2027, 1, 8, 17, 30)
    assert shift_business_minutes(calendar, jst(2027, 1, 13, 13, 30), -90) == jst(2027, 1, 13, 11, 0)
    for minutes in (-1, -600, 0, 45, 600):
        start = jst(2027, 1, 13, 10, 0)
        moved = shift_business_minutes(calendar, start, minutes)
        assert moved is not None
        assert business_minutes_between(calendar, min(start, moved), max(start, moved)) == abs(minutes)
    assert shift_business_minutes(Calendar(hours={}, public_holidays=None), jst(2027, 1, 8), -5) is None


def test_raising_the_priority_brings_running_deadlines_forward_by_the_difference() -> None:
    p = policy(targets=[
        {"priority": "normal", "first_response_minutes": 480, "next_response_minutes": 480,
         "resolution_minutes": 2400},
        {"priority": "urgent", "first_response_minutes": 60, "next_response_minutes": 60,
         "resolution_minutes": 480}])
    t = ticket()
    sla.on_opened(p, t, jst(2027, 1, 13, 9, 0))  # Wednesday
    assert t.first_response_due_at == jst(2027, 1, 13, 17, 0)
    t.priority = Priority.urgent
    sla.on_priority(p, t, Priority.normal, jst(2027, 1, 13, 9, 30))
    # 7 business hours earlier: 10:00; the resolution 1,920 business minutes earlier.
    assert t.first_response_due_at == jst(2027, 1, 13, 10, 0)
    assert t.resolution_due_at == jst(2027, 1, 13, 17, 0)
    assert t.sla_due_at == jst(2027, 1, 13, 10, 0)
    # Lowering it again, after the new deadline passed and was reported, moves it back out
    # and lets a breach of the later deadline be reported again.
    t.sla_breaches = "first_response"
    t.priority = Priority.normal
    sla.on_priority(p, t, Priority.urgent, jst(2027, 1, 13, 10, 30))
    assert t.first_response_due_at == jst(2027, 1, 13, 17, 0)
    assert t.sla_breaches == "" and t.sla_check_at == jst(2027, 1, 13, 17, 0)


def test_a_priority_without_a_target_stops_its_clocks_and_one_with_a_target_starts_them() -> None:
    p = policy()  # only "normal" has targets
    t = ticket(priority=Priority.low)
    sla.on_opened(p, t, jst(2027, 1, 13, 9, 0))
    assert t.sla_due_at is None
    t.priority = Priority.normal
    sla.on_priority(p, t, Priority.low, jst(2027, 1, 13, 11, 0))
    assert t.first_response_due_at == jst(2027, 1, 13, 13, 0)  # counted from the change
    assert t.resolution_due_at == jst(2027, 1, 14, 12, 0)
    t.first_response_at = jst(2027, 1, 13, 12, 0).astimezone(UTC)
    sla.on_reply(t)
    t.priority = Priority.low
    sla.on_priority(p, t, Priority.normal, jst(2027, 1, 13, 12, 30))
    assert t.resolution_due_at is None and t.sla_due_at is None
    assert t.first_response_due_at == jst(2027, 1, 13, 13, 0)  # met: kept as it was


@pytest.mark.parametrize("bad", [
    {"timezone": "Mars/Base"}, {"public_holidays": "XX"}, {"hours": {"funday": [["09:00", "10:00"]]}},
    {"hours": {"mon": [["18:00", "09:00"]]}}, {"hours": {"mon": [["9", "10"]]}}, {"hours": {}},
    {"targets": [{"priority": "normal", "first_response_minutes": 0, "next_response_minutes": 1}]},
])
def test_bad_settings_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        SlaConfig.model_validate(bad)


def test_a_day_is_worked_out_once_per_calendar_and_the_store_stays_bounded() -> None:
    calendar = policy().calendar
    friday = date(2026, 1, 9)
    first = calendar.open_intervals(friday)
    assert first == ((jst(2026, 1, 9, 9), jst(2026, 1, 9, 18)),)
    assert calendar.open_intervals(friday) is first  # kept, not worked out again
    assert calendar.open_intervals(date(2026, 1, 12)) == ()  # coming-of-age day
    for offset in range(hours.MAX_DAYS_KEPT + 10):
        calendar.open_intervals(date.fromordinal(friday.toordinal() + offset))
    assert len(calendar._days) <= hours.MAX_DAYS_KEPT
    assert calendar.open_intervals(friday) == first
