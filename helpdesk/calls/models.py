"""Phone calls from any provider, their deduplicated transitions, CTI settings, and presence."""

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, computed_field, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import JSON, Column, Index, String, UniqueConstraint
from sqlmodel import Field, SQLModel

from helpdesk.db import utcnow
from helpdesk.storage.types import UTCDateTime
from helpdesk.tickets.models import Status


class CallState(StrEnum):
    ringing = "ringing"
    answered = "answered"
    ended = "ended"


class CallDirection(StrEnum):
    inbound = "in"
    outbound = "out"


class Routed(StrEnum):
    """What we told the provider to do with an inbound call."""

    dial = "dial"
    queue = "queue"
    voicemail = "voicemail"
    rejected = "rejected"
    menu = "menu"  # the caller is choosing from the inbox's keypad menu


class Call(SQLModel, table=True):
    """One call. ``state`` only moves forward: ringing → answered → ended."""

    __tablename__ = "call"
    __table_args__ = (
        UniqueConstraint("provider", "call_id"),
        Index("ix_call_inbox_id_desc", "inbox_id", "id"),
        Index("ix_call_customer_started", "customer_id", "started_at"),
        Index("ix_call_operator_answered", "operator_id", "answered_at"),
        Index("ix_call_state_operator", "state", "operator_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(max_length=10)
    call_id: str = Field(max_length=250)
    direction: CallDirection = Field(max_length=3, sa_type=String(3))
    from_number: str = Field(default="", max_length=64)
    to_number: str = Field(default="", max_length=64)
    caller_e164: str | None = Field(default=None, max_length=20)
    state: CallState = Field(default=CallState.ringing, max_length=10, sa_type=String(10))
    cause: str | None = Field(default=None, max_length=40)
    done: bool = Field(default=False)
    voicemail: bool = Field(default=False)
    routed: Routed | None = Field(default=None, max_length=10, sa_type=String(10))
    inbox_id: int = Field(foreign_key="inbox.id")
    customer_id: int | None = Field(default=None, foreign_key="customer.id", ondelete="SET NULL")
    operator_id: int | None = Field(default=None, foreign_key="user.id")
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", ondelete="SET NULL")
    queue: str | None = Field(default=None, max_length=120)
    user_label: str | None = Field(default=None, max_length=500)
    offered_user_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    last_sequence: int = Field(default=-1)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    answered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recording_url: str | None = Field(default=None, max_length=500)
    recording_seconds: int | None = Field(default=None)
    menu_tag: str | None = Field(default=None, max_length=60)  # the keypad choice's tag
    # A missed or voicemail call someone called back: who, when, and what came of it.
    callback_result: str | None = Field(default=None, max_length=20)
    callback_by: int | None = Field(default=None, foreign_key="user.id")
    callback_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CallEvent(SQLModel, table=True):
    """A provider event already applied to a call; the unique key makes a retry a no-op."""

    __tablename__ = "call_event"
    __table_args__ = (UniqueConstraint("call_ref", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    call_ref: int = Field(foreign_key="call.id", ondelete="CASCADE")
    key: str = Field(max_length=120)
    sequence: int | None = Field(default=None)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WrapupState(SQLModel, table=True):
    """After-call work on one answered call: open from hang-up until its operator submits it.

    While it is open (and younger than the ACW limit) its operator is not offered calls.
    """

    __tablename__ = "call_wrapup"
    __table_args__ = (Index("ix_call_wrapup_operator_open", "operator_id", "submitted_at", "started_at"),)

    call_ref: int = Field(primary_key=True, foreign_key="call.id", ondelete="CASCADE")
    operator_id: int = Field(foreign_key="user.id")
    ticket_id: int | None = Field(default=None, foreign_key="ticket.id", ondelete="SET NULL")
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    submitted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acw_seconds: int | None = Field(default=None)
    disposition: str | None = Field(default=None, max_length=40)
    follow_up_on: date | None = Field(default=None)
    message_id: int | None = Field(default=None)


class TransferMode(StrEnum):
    blind = "blind"
    warm = "warm"


class TransferState(StrEnum):
    consulting = "consulting"  # warm: the two operators talk, the caller on hold
    ringing = "ringing"        # handed over, waiting for the receiver to pick up
    completed = "completed"
    cancelled = "cancelled"


class CallTransfer(SQLModel, table=True):
    """A call handed from one operator to another operator or to an inbox's queue."""

    __tablename__ = "call_transfer"
    __table_args__ = (Index("ix_call_transfer_call", "call_ref", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    call_ref: int = Field(foreign_key="call.id", ondelete="CASCADE")
    from_user_id: int | None = Field(default=None, foreign_key="user.id")
    to_user_id: int | None = Field(default=None, foreign_key="user.id")
    to_inbox_id: int | None = Field(default=None, foreign_key="inbox.id")
    mode: TransferMode = Field(max_length=5, sa_type=String(5))
    state: TransferState = Field(max_length=12, sa_type=String(12))
    notes: str = Field(default="", max_length=4000)
    # Twilio: the operators' consultation legs (warm transfers).
    from_leg: str | None = Field(default=None, max_length=64)
    to_leg: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class CallPublic(BaseModel):
    """A call as the API and events show it (``from``/``to`` as the provider sent them)."""

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: int
    call_id: str
    provider: str
    direction: CallDirection
    from_: str = PydanticField(validation_alias="from_number", serialization_alias="from")
    to: str = PydanticField(validation_alias="to_number")
    state: CallState
    cause: str | None
    done: bool
    voicemail: bool
    customer_id: int | None
    operator_id: int | None
    ticket_id: int | None
    inbox_id: int
    queue: str | None
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    recording_url: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def wait_seconds(self) -> int | None:
        """Seconds from ringing to answer (or to hang-up when nobody answered)."""
        until = self.answered_at or self.ended_at
        return int((until - self.started_at).total_seconds()) if until else None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def talk_seconds(self) -> int | None:
        """Seconds talked, once the answered call ended."""
        if self.answered_at is None or self.ended_at is None:
            return None
        return max(0, int((self.ended_at - self.answered_at).total_seconds()))


class CallLogEntry(CallPublic):
    """A call in the caller log, with what people read instead of ids."""

    customer_name: str | None = None
    operator_name: str | None = None
    ticket_number: int | None = None
    withheld: bool = False
    recording_seconds: int | None = None
    callback_result: str | None = None
    callback_at: datetime | None = None
    wrapup: "WrapupPublic | None" = None


class CallPage(BaseModel):
    items: list[CallLogEntry]
    next_cursor: str | None


class CallIds(BaseModel):
    ids: list[int] = PydanticField(min_length=1, max_length=500)


class WrapUp(BaseModel):
    """After-call work: notes and/or an outcome code, optionally a status and a follow-up day."""

    notes: str = PydanticField(default="", max_length=20_000)
    ticket_id: int | None = None
    status: Status | None = None
    pending_reason: str | None = PydanticField(default=None, max_length=300)
    disposition: str | None = PydanticField(default=None, min_length=1, max_length=40)
    follow_up_on: date | None = None

    @model_validator(mode="after")
    def _says_something(self) -> "WrapUp":
        if not self.notes.strip() and not self.disposition:
            raise ValueError("notes or disposition: one is required")
        return self


class WrapupPublic(BaseModel):
    """A call's after-call work as the panel shows it."""

    model_config = ConfigDict(from_attributes=True)

    call_id: int = PydanticField(validation_alias="call_ref")
    operator_id: int
    ticket_id: int | None
    started_at: datetime
    submitted_at: datetime | None
    acw_seconds: int | None
    disposition: str | None
    follow_up_on: date | None


class TransferRequest(BaseModel):
    """Hand the call to an operator or an inbox's queue; ``warm`` consults the receiver first."""

    to_user_id: int | None = None
    to_inbox_id: int | None = None
    mode: TransferMode = TransferMode.blind
    notes: str = PydanticField(default="", max_length=4000)

    @model_validator(mode="after")
    def _one_target(self) -> "TransferRequest":
        if (self.to_user_id is None) == (self.to_inbox_id is None):
            raise ValueError("name one receiver: to_user_id or to_inbox_id")
        return self


class TransferPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    call_id: int = PydanticField(validation_alias="call_ref")
    from_user_id: int | None
    to_user_id: int | None
    to_inbox_id: int | None
    mode: TransferMode
    state: TransferState
    notes: str
    created_at: datetime
    completed_at: datetime | None


class WrapupView(BaseModel):
    call: CallPublic
    wrapup: WrapupPublic | None
    dispositions: list[str]
    acw_limit_seconds: int


class CallbackOutcome(StrEnum):
    reached = "reached"
    no_answer = "no_answer"
    voicemail = "voicemail"
    wrong_number = "wrong_number"


class CallbackResult(BaseModel):
    result: CallbackOutcome
    notes: str = PydanticField(default="", max_length=4000)


class OutboundCall(BaseModel):
    to: str = PydanticField(min_length=3, max_length=40)
    customer_id: int | None = None
    ticket_id: int | None = None  # started from a ticket: the call belongs to it
    callback_of: int | None = None  # calling back this missed call or voicemail


CallLogEntry.model_rebuild()
