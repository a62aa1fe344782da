"""The app's sender registry as a route dependency (what can be sent on which channel)."""

from typing import Annotated

from fastapi import Depends, Request

from helpdesk.outbox.service import SenderRegistry


def senders(request: Request) -> SenderRegistry:
    """The registry the app's channels registered their senders in at start."""
    registry: SenderRegistry = request.app.state.senders
    return registry


SendersDep = Annotated[SenderRegistry, Depends(senders)]
