"""``GET /metrics``: the Prometheus text format, behind the staff IP allow-list like every page."""

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from helpdesk.db import ReadSessionDep
from helpdesk.errors import NotFound

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request, session: ReadSessionDep) -> Response:
    """This process's metrics (latency, queues, sockets, outbox, webhook failures)."""
    if not request.app.state.settings.metrics_enabled:
        raise NotFound("metrics are turned off")
    current = request.app.state.metrics
    await current.refresh(session, clients=request.app.state.hub.clients)
    return Response(current.text(), media_type=CONTENT_TYPE_LATEST)
