"""The event catalogue: one class per stored event type, each knowing who receives it.

Domain code records an event with ``events.record(session, TicketUpdated(...))``; it is written
to the log when the transaction commits (see ``realtime.log``) and reaches the sockets of
everyone its audience names. The frame a socket gets is ``{"seq", "type", "at", "data"}``, with
``data`` as ``Recorded.data`` builds it; docs/events.md lists them all (generated from this
module by ``python -m helpdesk.realtime.events``, checked by tests/realtime/test_catalogue.py).

Imports no domain module: payload parts the domains shape themselves (a ticket, a call, a
profile) arrive already as JSON-ready dicts.
"""

from dataclasses import dataclass, fields
from typing import Any, ClassVar

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.realtime import log

Json = dict[str, Any]
# A row's id: set once the row is flushed, but typed optional by the models it comes from.
RowId = int | None


class Absent:
    """A payload key the event leaves out (as opposed to sending it as null)."""

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT = Absent()


@dataclass(frozen=True, kw_only=True)
class Recorded:
    """A stored event: its ``type``, its audience, and the ``data`` its frame carries.

    ``data`` is every field that is not part of the audience, in field order, leaving out
    those that are ``ABSENT``. A subclass overrides ``data`` when its payload is shaped otherwise.
    """

    type: ClassVar[str]
    # Who receives it, as docs/events.md says it (supervisors and admins receive every event).
    audience_text: ClassVar[str]
    _AUDIENCE_FIELDS: ClassVar[frozenset[str]] = frozenset({"inbox_id", "user_ids"})

    def data(self) -> Json:
        """The frame's ``data``."""
        return {f.name: value for f in fields(self) if f.name not in self._AUDIENCE_FIELDS
                and (value := getattr(self, f.name)) is not ABSENT}

    def inbox(self) -> int | None:
        """The inbox whose operators receive it (None: no inbox's)."""
        return None

    def users(self) -> list[int] | None:
        """Users who receive it whatever their inboxes (None: none named)."""
        return None

    broadcast: ClassVar[bool] = False  # every signed-in user receives it


@dataclass(frozen=True, kw_only=True)
class ToInbox(Recorded):
    """Received by the operators of ``inbox_id``."""

    audience_text: ClassVar[str] = "the inbox's operators"
    inbox_id: int | None

    def inbox(self) -> int | None:
        return self.inbox_id


@dataclass(frozen=True, kw_only=True)
class ToUsers(Recorded):
    """Received by ``user_ids`` only."""

    audience_text: ClassVar[str] = "the users it names"
    user_ids: list[int]

    def users(self) -> list[int] | None:
        return list(self.user_ids)


@dataclass(frozen=True, kw_only=True)
class ToInboxAndUsers(Recorded):
    """Received by the operators of ``inbox_id`` and by ``user_ids``."""

    audience_text: ClassVar[str] = "the inbox's operators and the users it names"
    inbox_id: int | None
    user_ids: list[int]

    def inbox(self) -> int | None:
        return self.inbox_id

    def users(self) -> list[int] | None:
        return list(self.user_ids)


@dataclass(frozen=True, kw_only=True)
class ToEveryone(Recorded):
    """Received by every signed-in user."""

    audience_text: ClassVar[str] = "everyone"
    broadcast: ClassVar[bool] = True


def record(session: AsyncSession, event: Recorded) -> None:
    """Queue ``event`` in ``session``'s transaction: stored, and sent, when it commits."""
    log.record(session, type=event.type, data=event.data(), inbox_id=event.inbox(),
               user_ids=event.users(), broadcast=event.broadcast)


# ---- tickets and messages --------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TicketEvent(ToInbox):
    """A ticket as the API shows it, and why it went to its assignee when that is known."""

    ticket: Json
    reason: Json | Absent = ABSENT


class TicketCreated(TicketEvent):
    type = "ticket.created"


class TicketUpdated(TicketEvent):
    type = "ticket.updated"


class TicketAssigned(TicketEvent):
    type = "ticket.assigned"


@dataclass(frozen=True, kw_only=True)
class TicketSlaBreached(ToInbox):
    type = "ticket.sla_breached"
    ticket_id: RowId
    target: str
    due_at: str


@dataclass(frozen=True, kw_only=True)
class TicketMentioned(ToUsers):
    type = "ticket.mentioned"
    ticket_id: RowId
    ticket_number: int
    message_id: RowId
    by: str
    preview: str


@dataclass(frozen=True, kw_only=True)
class MessageCreated(ToInbox):
    type = "message.created"
    ticket_id: RowId
    ticket_version: int
    message_id: RowId
    direction: str
    internal: bool
    channel: str
    author: str | None
    author_id: int | None
    preview: str


@dataclass(frozen=True, kw_only=True)
class MessageUpdated(ToInbox):
    """A message's delivery, edit or reactions changed; the keys after ``error`` only when known."""

    type = "message.updated"
    ticket_id: RowId
    message_id: RowId
    channel: str
    direction: str
    delivery_status: str | None
    error: str | None
    attachments: list[Json] | Absent = ABSENT
    preview: str | Absent = ABSENT
    reactions: list[Json] | Absent | None = ABSENT
    edited: bool | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class ApprovalEvent(ToInbox):
    """A reply that needs a supervisor's approval, and what became of it."""

    ticket_id: RowId
    ticket_version: int
    message_id: RowId
    author_user_id: int | None
    approval_status: str | None
    comment: str | None
    preview: str


class MessageApprovalRequested(ApprovalEvent):
    type = "message.approval_requested"


class MessageApproved(ApprovalEvent):
    type = "message.approved"


class MessageRejected(ApprovalEvent):
    type = "message.rejected"


# ---- calls -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CallRinging(ToUsers):
    """The screen pop: the call, the caller's headline and profile (and a transfer's notes)."""

    type = "call.ringing"
    audience_text = "the operators offered the call"
    call: Json
    caller: Json
    profile: Json | None
    transfer: Json | Absent = ABSENT


@dataclass(frozen=True, kw_only=True)
class CallAnswered(ToUsers):
    """What the answering operator's page opens: ``{"ticket_id"}``, ``{"customer_id"}`` or
    ``{"new_ticket": {"phone"}}``."""

    type = "call.answered"
    audience_text = "the operators offered the call and the one who has it"
    call: Json
    operator_id: int | None
    open: Json


@dataclass(frozen=True, kw_only=True)
class CallOutcome(ToInboxAndUsers):
    """How a call ended (answered and hung up, or missed), to its inbox and its operators."""

    call: Json


class CallEnded(CallOutcome):
    type = "call.ended"


class CallMissed(CallOutcome):
    type = "call.missed"


@dataclass(frozen=True, kw_only=True)
class CallTransferStarted(ToInboxAndUsers):
    type = "call.transfer_started"
    call: Json
    transfer: Json


@dataclass(frozen=True, kw_only=True)
class CallTransferred(ToInboxAndUsers):
    type = "call.transferred"
    call: Json
    transfer: Json


@dataclass(frozen=True, kw_only=True)
class CallAcwStarted(ToInboxAndUsers):
    """After-call work began for ``operator_id``, with ``limit_seconds`` to finish it."""

    type = "call.acw_started"
    call_id: RowId
    operator_id: int | None
    ticket_id: int | None
    started_at: str
    limit_seconds: int


@dataclass(frozen=True, kw_only=True)
class CallWrapupDone(ToInboxAndUsers):
    type = "call.wrapup_done"
    call_id: RowId
    operator_id: int | None
    ticket_id: int | None
    disposition: str | None
    acw_seconds: int | None
    talk_seconds: int | None
    follow_up_on: str | None


@dataclass(frozen=True, kw_only=True)
class CallMenuChosen(ToInbox):
    """The caller chose a menu option, which may have moved the call to another inbox."""

    type = "call.menu_chosen"
    call_id: RowId
    digit: str
    tag: str | None

    def data(self) -> Json:
        return {"call_id": self.call_id, "digit": self.digit, "inbox_id": self.inbox_id,
                "tag": self.tag}


@dataclass(frozen=True, kw_only=True)
class CallCallbackRequested(ToInbox):
    type = "call.callback_requested"
    call_id: RowId
    ticket_id: int | None
    customer_id: int | None


@dataclass(frozen=True, kw_only=True)
class CallCallbackResult(ToInbox):
    type = "call.callback_result"
    call_id: RowId
    result: str
    by: RowId
    at: str


# ---- sign-in sessions ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SessionRevoked(ToUsers):
    """Sign-in sessions of a user ended (signed out, everywhere, a new password, an admin):
    every process's hub closes the live sockets opened with them (close code 4403)."""

    type = "session.revoked"
    session_ids: list[int]


# ---- presence --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PresenceChanged(ToEveryone):
    type = "presence.changed"
    user_id: int
    name: str
    role: str
    status: str
    since: str


def catalogue() -> list[type[Recorded]]:
    """Every stored event type, in the order docs/events.md lists them."""
    found: list[type[Recorded]] = []
    pending: list[type[Recorded]] = [Recorded]
    while pending:
        for sub in pending.pop(0).__subclasses__():
            pending.append(sub)
            if "type" in vars(sub):
                found.append(sub)
    return sorted(found, key=lambda cls: cls.type)
