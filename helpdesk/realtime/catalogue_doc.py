"""docs/events.md, written from the event catalogue: every frame a page's socket receives, who
receives it, its ``data`` keys, and which of the page scripts read it.

``python -m helpdesk.realtime.catalogue_doc > docs/events.md`` rewrites it; a test fails when
the file and the catalogue disagree.
"""

import re
from dataclasses import fields
from pathlib import Path

from helpdesk.realtime.events import ABSENT, Recorded, catalogue

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "static" / "js"

# Frames that are not stored and carry no seq: (type, data keys, who receives it).
EPHEMERAL: list[tuple[str, str, str]] = [
    ("ticket.viewing", "ticket_id, user_id, name", "the ticket's inbox, but not the sender"),
    ("ticket.typing", "ticket_id, user_id, name", "the ticket's inbox, but not the sender"),
    ("resync", "after", "the socket that fell behind: the seq it goes on from"),
    ("ping", "—", "the socket (the page answers pong)"),
    ("pong", "—", "the socket that sent ping"),
    ("error", "detail", "the socket whose frame was refused"),
]


def data_keys(event: type[Recorded]) -> str:
    """The ``data`` keys of ``event``'s frame; optional ones in brackets."""
    if "data" in vars(event):  # shaped by hand: ask an example
        return ", ".join(_example_keys(event))
    keys = [f.name if f.default is not ABSENT else f"[{f.name}]"
            for f in fields(event) if f.name not in Recorded._AUDIENCE_FIELDS]
    return ", ".join(keys)


def _example_keys(event: type[Recorded]) -> list[str]:
    values = {f.name: None for f in fields(event)}
    return list(event(**values).data())


def readers(type_: str) -> str:
    """The page scripts that name ``type_`` (those matching on a prefix such as "call." aside)."""
    pattern = re.compile(r"[\"']" + re.escape(type_) + r"[\"']")
    found = sorted(path.name for path in SCRIPTS.glob("*.js") if pattern.search(path.read_text()))
    return ", ".join(found) or "—"


def document() -> str:
    """docs/events.md."""
    lines = [
        "# Live events",
        "",
        "Written by `python -m helpdesk.realtime.catalogue_doc` from the catalogue",
        "(`helpdesk/realtime/events.py`); do not edit by hand.",
        "",
        "Every frame is one JSON object `{\"seq\", \"type\", \"at\", \"data\"}` (see CONTRACT: the",
        "live socket). `static/js/live.js` keeps the last `seq`, resumes after it on reconnect and",
        "hands every event to the page scripts as a `helpdesk:event`; the scripts named below act",
        "on the types they know. Supervisors and admins receive every stored event.",
        "",
        "## Stored events",
        "",
        "| type | class | received by | data | read by |",
        "|---|---|---|---|---|",
    ]
    for event in catalogue():
        lines.append(f"| `{event.type}` | `{event.__name__}` | {event.audience_text} | "
                     f"{data_keys(event)} | {readers(event.type)} |")
    lines += [
        "",
        "## Frames that are not stored (no seq)",
        "",
        "| type | data | received by | read by |",
        "|---|---|---|---|",
    ]
    for type_, keys, audience in EPHEMERAL:
        lines.append(f"| `{type_}` | {keys} | {audience} | {readers(type_)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(document(), end="")
