"""Customer messages arriving: through the inbound API, or straight through the ingest path."""

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.storage.sessions import begin_write
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundMessage, IngestResult, Sender
from tests.support.server import INBOUND_TOKEN

INBOUND_HEADERS = {"Authorization": f"Bearer {INBOUND_TOKEN}"}


def inbound_body(body: str = "注文の件で質問です", **sender: str) -> dict[str, object]:
    return {"channel": "api", "from": sender or {"name": "山田 太郎", "email": "taro@example.jp"},
            "body": body}


async def post_inbound(client: httpx.AsyncClient, key: str, body: dict[str, object] | None = None,
                       ) -> httpx.Response:
    return await client.post("/api/inbound", json=body or inbound_body(),
                             headers={**INBOUND_HEADERS, "Idempotency-Key": key})


async def inbound(db: AsyncSession, key: str, *, body: str = "注文の件で質問です", name: str = "山田 太郎",
                  email: str | None = "taro@example.jp", phone: str | None = None,
                  channel: Channel = Channel.api, subject: str | None = None,
                  body_html: str | None = None, inbox: str = "default") -> IngestResult:
    """A message through the one ingest path, committed so the server sees it."""
    await begin_write(db)
    result = await ticket_ingest.ingest(db, InboundMessage(
        channel=channel, external_id=key, sender=Sender(name=name, email=email, phone=phone),
        body_text=body, body_html=body_html, subject=subject, inbox=inbox))
    await db.commit()
    return result
