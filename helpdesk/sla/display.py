"""How a ticket's deadline looks in a list: on time, close (amber), breached (red) or paused."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from helpdesk.db import utcnow

# Closer than this to a deadline, a ticket is shown in amber.
NEAR = timedelta(hours=1)


@dataclass(frozen=True)
class TimeLeft:
    state: str  # "ok" | "near" | "breached" | "paused" | "none"
    seconds: int | None = None  # left, or past due for "breached"


def time_left(ticket: object, now: datetime | None = None) -> TimeLeft:
    """The ticket's soonest running deadline as seen now (any object with the ticket's fields)."""
    due: datetime | None = getattr(ticket, "sla_due_at", None)
    if getattr(ticket, "status", None) == "pending" and any(
            getattr(ticket, name, None) for name in ("first_response_due_at", "next_response_due_at",
                                                     "resolution_due_at")):
        return TimeLeft("paused")
    if due is None:
        return TimeLeft("none")
    left = due - (now or utcnow())
    if left < timedelta(0):
        return TimeLeft("breached", int(-left.total_seconds()))
    return TimeLeft("near" if left <= NEAR else "ok", int(left.total_seconds()))
