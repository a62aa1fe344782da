"""What goes on the wire and to whom: a committed event's frame, who may receive it, and the
frames that are not stored. Imports no domain module, so the hub can use it."""

import json
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property, partial
from typing import Any

from helpdesk.db import utcnow
from helpdesk.realtime.models import Event

# Compact UTF-8 JSON: the frames and the log's ``data`` column are encoded alike.
dumps = partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class LiveEvent:
    """A committed event as the sockets need it: its audience and its frame, serialised once."""

    seq: int
    type: str
    at: datetime
    data: dict[str, Any]
    inbox_id: int | None = None
    user_ids: list[int] | None = None
    broadcast: bool = False
    # The access version the committing transaction saw (see ``log.access_version``); known
    # only for this process's own commits.
    access_version: int | None = field(default=None, compare=False)
    data_text: str | None = field(default=None, compare=False, repr=False)  # ``data`` encoded

    @cached_property
    def text(self) -> str:
        """The server → client frame: ``{"seq", "type", "at", "data"}``, compact UTF-8 JSON."""
        data = self.data_text if self.data_text is not None else dumps(self.data)
        return (f'{{"seq":{self.seq},"type":{dumps(self.type)},'
                f'"at":{dumps(self.at.isoformat())},"data":{data}}}')


@dataclass(frozen=True)
class Audience:
    """What one user may receive: everything (supervisors, admins), or their inboxes and own events."""

    user_id: int
    sees_everything: bool
    inbox_ids: frozenset[int] = field(default_factory=frozenset)
    active: bool = True

    def may_see(self, event: Event | LiveEvent) -> bool:
        """Whether this user may receive ``event``."""
        if self.sees_everything or event.broadcast:
            return True
        if event.user_ids is not None and self.user_id in event.user_ids:
            return True
        return event.inbox_id is not None and event.inbox_id in self.inbox_ids

    def may_see_inbox(self, inbox_id: int | None) -> bool:
        """Whether this user works ``inbox_id`` (supervisors and admins work them all)."""
        return self.sees_everything or (inbox_id is not None and inbox_id in self.inbox_ids)


def ephemeral_text(type: str, data: dict[str, Any]) -> str:
    """A frame that is not stored and carries no seq (viewing, typing, ping, errors)."""
    return dumps({"type": type, "at": utcnow().isoformat(), "data": data})
