"""Meta: Messenger, Instagram and WhatsApp Cloud webhooks in; Send API / Cloud API out.

A thread's ``conversation_key`` records where to answer: ``meta:<platform>:<account>:<user>``,
the account being the Page, Instagram account or WhatsApp phone number id that was written to.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.config import Settings
from helpdesk.outbox.service import OutboundContext, SendError
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, InboundMessage, Sender

MAX_TEXT = {"messenger": 2000, "instagram": 1000, "whatsapp": 4096}
_PLACEHOLDERS = {"image": "[画像]", "video": "[動画]", "audio": "[音声]", "file": "[ファイル]",
                 "document": "[ファイル]", "sticker": "[スタンプ]", "location": "[位置情報]"}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(value: object, divisor: int) -> datetime | None:
    try:
        seconds = float(value) / divisor  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, UTC) if seconds > 0 else None


def messaging_events(payload: dict[str, Any]) -> Iterator[InboundMessage]:
    """Messenger (``object: page``) and Instagram (``object: instagram``) messages."""
    platform = {"page": "messenger", "instagram": "instagram"}.get(str(payload.get("object")))
    if platform is None:
        return
    for entry in _dicts(payload.get("entry")):
        for item in _dicts(entry.get("messaging")):
            message = item.get("message")
            sender = _str((item.get("sender") or {}).get("id"))
            account = _str((item.get("recipient") or {}).get("id")) or _str(entry.get("id"))
            if not isinstance(message, dict) or message.get("is_echo") or not sender or not account:
                continue
            mid = _str(message.get("mid"))
            if mid is None:
                continue
            text = _str(message.get("text")) or _attachments_text(message.get("attachments"))
            yield InboundMessage(
                channel=Channel(platform), external_id=mid[:255],
                sender=Sender(meta_id=f"{platform}:{sender}"), body_text=text,
                conversation_key=f"meta:{platform}:{account}:{sender}",
                received_at=_when(item.get("timestamp"), 1000),
            )


def _attachments_text(attachments: object) -> str:
    kinds = [str(a.get("type")) for a in _dicts(attachments)]
    return " ".join(_PLACEHOLDERS.get(k, f"[{k}]") for k in kinds) or "[メッセージ]"


def whatsapp_events(payload: dict[str, Any]) -> Iterator[InboundMessage]:
    """WhatsApp Cloud API messages (``object: whatsapp_business_account``)."""
    if payload.get("object") != "whatsapp_business_account":
        return
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            phone_id = _str((value.get("metadata") or {}).get("phone_number_id"))
            names = {c.get("wa_id"): (c.get("profile") or {}).get("name")
                     for c in _dicts(value.get("contacts"))}
            for message in _dicts(value.get("messages")):
                inbound = _whatsapp_message(message, phone_id, names)
                if inbound is not None:
                    yield inbound


def _whatsapp_message(message: dict[str, Any], phone_id: str | None,
                      names: dict[Any, Any]) -> InboundMessage | None:
    wa_id, mid = _str(message.get("from")), _str(message.get("id"))
    if not wa_id or not mid or not phone_id:
        return None
    kind = str(message.get("type", ""))
    if kind == "text":
        text = str((message.get("text") or {}).get("body", ""))
    else:
        caption = (message.get(kind) or {}).get("caption") if isinstance(message.get(kind), dict) else None
        text = " ".join(p for p in (_PLACEHOLDERS.get(kind, f"[{kind}]"), _str(caption)) if p)
    name = names.get(wa_id)
    return InboundMessage(
        channel=Channel.whatsapp, external_id=mid[:255],
        sender=Sender(name=name if isinstance(name, str) else None, phone=f"+{wa_id.lstrip('+')}"),
        body_text=text, conversation_key=f"meta:whatsapp:{phone_id}:{wa_id}",
        received_at=_when(message.get("timestamp"), 1),
    )


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


async def ingest_payload(session: AsyncSession, payload: dict[str, Any], *,
                         settings: Settings) -> int:
    """Ingest every message in a webhook payload, committing each; returns how many were new."""
    new = 0
    options = tickets.IngestOptions(region=settings.default_region)
    for inbound in [*messaging_events(payload), *whatsapp_events(payload)]:
        result = await tickets.ingest(session, inbound, options=options)
        await session.commit()
        new += not result.duplicate
    return new


# ---- replies --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Thread:
    platform: str
    account: str
    user: str


def thread_of(conversation_key: str | None) -> Thread | None:
    """Where a Meta thread's replies go, from its conversation key."""
    parts = (conversation_key or "").split(":", 3)
    if len(parts) != 4 or parts[0] != "meta" or not all(parts[1:]):
        return None
    return Thread(platform=parts[1], account=parts[2], user=parts[3])


def is_cloud_whatsapp(context: OutboundContext) -> bool:
    """Whether a WhatsApp reply belongs to a thread that came in through the Cloud API."""
    thread = thread_of(context.conversation_key)
    return thread is not None and thread.platform == "whatsapp"


async def send_message(context: OutboundContext) -> str | None:
    """Send an operator's reply through the Send API or the WhatsApp Cloud API."""
    settings = context.settings
    if not settings.meta_access_token:
        raise SendError("META_ACCESS_TOKEN is not configured")
    thread = thread_of(context.conversation_key)
    if thread is None:
        raise SendError("this ticket has no Meta thread to answer in", permanent=True)
    text = context.body_text[:MAX_TEXT.get(thread.platform, 1000)]
    base = f"{settings.meta_api_base.rstrip('/')}/{settings.meta_graph_version}"
    if thread.platform == "whatsapp":
        url = f"{base}/{thread.account}/messages"
        body: dict[str, Any] = {"messaging_product": "whatsapp", "recipient_type": "individual",
                                "to": thread.user, "type": "text",
                                "text": {"preview_url": False, "body": text}}
    else:
        url = f"{base}/me/messages"
        body = {"recipient": {"id": thread.user}, "messaging_type": "RESPONSE",
                "message": {"text": text}}
    response = await context.http.post(
        url, json=body, headers={"Authorization": f"Bearer {settings.meta_access_token}"})
    if response.status_code >= 300:
        raise SendError(f"Meta answered {response.status_code}: {response.text[:300]}",
                        permanent=400 <= response.status_code < 500 and response.status_code != 429)
    data = response.json()
    if thread.platform == "whatsapp":
        sent = (data.get("messages") or [{}])[0].get("id")
    else:
        sent = data.get("message_id")
    return str(sent) if sent else None
