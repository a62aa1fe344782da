"""Report rollups kept from the event log: per operator and inbox per day, the samples behind
their medians, and the little per-ticket state the log's snapshots are compared against."""

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Column, Date, Index
from sqlmodel import Field, SQLModel

from helpdesk.storage.types import UTCDateTime

# The counter holding the highest event seq applied to the rollups.
APPLIED = "report_applied"


class ReportOperatorDay(SQLModel, table=True):
    """One operator's work in one inbox on one local day (inbox 0: not tied to an inbox)."""

    __tablename__ = "report_operator_day"

    day: date = Field(sa_column=Column(Date, primary_key=True))
    user_id: int = Field(primary_key=True)
    inbox_id: int = Field(primary_key=True)
    handled: int = 0
    replies: int = 0
    calls_answered: int = 0
    handling_seconds: float = 0.0


class ReportInboxDay(SQLModel, table=True):
    """One inbox on one local day; backlog and oldest waiting as they stood after its last event."""

    __tablename__ = "report_inbox_day"

    day: date = Field(sa_column=Column(Date, primary_key=True))
    inbox_id: int = Field(primary_key=True)
    created: int = 0
    resolved: int = 0
    backlog_unhandled: int = 0
    backlog_in_progress: int = 0
    backlog_pending: int = 0
    oldest_waiting_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sla_met: int = 0
    sla_total: int = 0
    calls_offered: int = 0
    calls_answered: int = 0
    calls_abandoned: int = 0
    calls_answered_20s: int = 0
    wait_seconds: float = 0.0  # summed over answered calls
    talk_seconds: float = 0.0


class ReportSample(SQLModel, table=True):
    """One duration behind a median: a first response or a resolution, by whom and when."""

    __tablename__ = "report_sample"
    # In the order the day percentiles rank them: the window functions read it without sorting.
    __table_args__ = (Index("ix_report_sample_metric_day", "metric", "day", "user_id", "seconds"),)

    id: int | None = Field(default=None, primary_key=True)
    metric: str = Field(max_length=20)
    day: date = Field(sa_column=Column(Date, nullable=False))
    user_id: int
    inbox_id: int
    ticket_id: int
    seconds: float


class ReportHistogram(SQLModel, table=True):
    """Samples counted in buckets 5 % wide, per operator and day: medians over long ranges
    come from a few hundred of these rows instead of sorting every sample (within 5 %)."""

    __tablename__ = "report_histogram"

    metric: str = Field(primary_key=True, max_length=20)
    day: date = Field(sa_column=Column(Date, primary_key=True))
    user_id: int = Field(primary_key=True)
    bucket: int = Field(primary_key=True)
    n: int = 0


class ReportTicket(SQLModel, table=True):
    """What the rollup last knew of a ticket, to tell what an event's snapshot changed."""

    __tablename__ = "report_ticket"
    __table_args__ = (Index("ix_report_ticket_waiting", "inbox_id", "status", "status_since"),)

    ticket_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    inbox_id: int
    status: str = Field(max_length=20)
    assignee_id: int | None = None
    created_at: datetime = Field(sa_type=UTCDateTime)
    status_since: datetime = Field(sa_type=UTCDateTime)
    responded: bool = False


class ReportBacklog(SQLModel, table=True):
    """Tickets per inbox and status as the log tells it (the day rows copy it)."""

    __tablename__ = "report_backlog"

    inbox_id: int = Field(primary_key=True)
    status: str = Field(primary_key=True, max_length=20)
    n: int = 0


class ReportOperator(SQLModel, table=True):
    """An operator's last answered call, so the wrap-up note after it counts as after-call work."""

    __tablename__ = "report_operator"

    user_id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    call_ticket_id: int | None = None
    call_ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


ROLLUP_MODELS: tuple[type[SQLModel], ...] = (
    ReportOperatorDay, ReportInboxDay, ReportSample, ReportHistogram, ReportTicket, ReportBacklog,
    ReportOperator)


# ---- API shapes --------------------------------------------------------------------------


class OperatorDayPublic(BaseModel):
    """One item of ``GET /api/reports/operators``."""

    user_id: int
    name: str
    date: date
    handled: int
    replies: int
    calls_answered: int
    handling_seconds: float
    first_response_seconds_median: float | None
    first_response_seconds_p90: float | None
    resolution_seconds_median: float | None
    resolution_seconds_p90: float | None


class InboxDayPublic(BaseModel):
    """One item of ``GET /api/reports/inboxes``."""

    inbox_id: int
    name: str
    date: date
    created: int
    resolved: int
    backlog: dict[str, int]
    oldest_waiting_at: datetime | None
    sla_met_ratio: float | None
    calls_offered: int
    calls_answered: int
    calls_abandoned: int
    service_level_20s: float | None
    average_wait_seconds: float | None
    average_talk_seconds: float | None


class ReportPage(BaseModel):
    items: list[Any]
