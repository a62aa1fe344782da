"""Transitional: the names the domains still import from here, now kept in ``log`` (the event
log), ``frames``, ``audiences`` and ``presence``. Removed once every caller imports those."""

from helpdesk.realtime.audiences import audiences
from helpdesk.realtime.frames import Audience, LiveEvent, ephemeral_text
from helpdesk.realtime.log import (
    LocalEvents,
    access_version,
    events_after,
    live_events_after,
    prune_events,
    pruned_through,
    record,
    seq_bounds,
    sockets_first,
)
from helpdesk.realtime.presence import (
    connect,
    disconnect,
    heartbeat_and_sweep,
    online_among,
    online_query,
    presence_list,
    refresh_presence,
    set_status,
)

__all__ = ["Audience", "LiveEvent", "LocalEvents", "access_version", "audiences", "connect",
           "disconnect", "ephemeral_text", "events_after", "heartbeat_and_sweep",
           "live_events_after", "online_among", "online_query", "presence_list", "prune_events",
           "pruned_through", "record", "refresh_presence", "seq_bounds", "set_status",
           "sockets_first"]
