"""LINE Messaging API: webhook events in, push messages out."""

import logging
import uuid
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import boundary
from helpdesk.channels import amendments, media, places, webhooks
from helpdesk.channels.amendments import Amendment
from helpdesk.config import Settings
from helpdesk.customers import service as customers
from helpdesk.outbox.service import OutboundContext, SendError
from helpdesk.receipts import service as receipts
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundAttachment, InboundMessage, Sender

log = logging.getLogger(__name__)

MAX_TEXT = 5000  # LINE's limit for one text message
MAX_MESSAGES = 5  # and for one push
BLOCKED_TAG = "LINEブロック"
_names = webhooks.TTLCache()

# What operators see for messages that are not text.
# What users send that LINE keeps for a while and the helpdesk downloads as an attachment.
MEDIA_KINDS = ("image", "video", "audio", "file")
_PLACEHOLDERS = {"image": "[画像]", "video": "[動画]", "audio": "[音声]", "file": "[ファイル]",
                 "location": "[位置情報]", "sticker": "[スタンプ]"}


def source_ids(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """(the user who acted, the chat to answer in: the group, room or user)."""
    source = event.get("source") or {}
    if not isinstance(source, dict):
        return None, None
    user_id = source.get("userId") if isinstance(source.get("userId"), str) else None
    chat = source.get("groupId") or source.get("roomId") or user_id
    return user_id, chat if isinstance(chat, str) else None


async def display_name(http: httpx.AsyncClient, settings: Settings, user_id: str) -> str | None:
    """The user's LINE display name from the profile API (None when it cannot be had)."""
    found, name = _names.get(user_id)
    if found:
        return name
    if not settings.line_channel_access_token:
        return None
    try:
        response = await http.get(
            f"{settings.line_api_base.rstrip('/')}/v2/bot/profile/{user_id}",
            headers={"Authorization": f"Bearer {settings.line_channel_access_token}"}, timeout=5)
        name = response.json().get("displayName") if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("LINE profile of %s unavailable: %s", user_id, exc)
        return None
    name = name if isinstance(name, str) else None
    _names.put(user_id, name)
    return name


def message_text(message: dict[str, Any]) -> str:
    """The text an operator sees for one LINE message object."""
    kind = str(message.get("type", ""))
    if kind == "text":
        return str(message.get("text", ""))
    label = _PLACEHOLDERS.get(kind, f"[{kind or 'メッセージ'}]")
    if kind == "file" and message.get("fileName"):
        return f"{label} {message['fileName']}"
    external = _external_url(message)
    if external:
        return f"{label} {external}"
    if kind == "location":
        return places.location_text(message.get("title"), message.get("address"),
                                  message.get("latitude"), message.get("longitude"))
    return label


def _external_url(message: dict[str, Any]) -> str | None:
    """Where content held by another provider is (``contentProvider.type: external``)."""
    provider = message.get("contentProvider")
    if not isinstance(provider, dict) or provider.get("type") != "external":
        return None
    url = provider.get("originalContentUrl")
    return url if isinstance(url, str) and url.startswith("https://") else None


def media_of(message: dict[str, Any]) -> tuple[str, str, str | None] | None:
    """(content id, kind, file name) of content to download from LINE; None for anything else.

    Content another provider holds (``external``) is not downloaded: the message shows its
    link, so the server never fetches an address a message named.
    """
    kind, content_id = message.get("type"), message.get("id")
    if kind not in MEDIA_KINDS or not isinstance(content_id, str) or not content_id:
        return None
    provider = message.get("contentProvider")
    if isinstance(provider, dict) and provider.get("type", "line") != "line":
        return None
    name = message.get("fileName")
    return content_id, str(kind), name if isinstance(name, str) and name else None


def to_inbound(event: dict[str, Any], *, name: str | None) -> InboundMessage | None:
    """The InboundMessage for a message event (None for events that carry none).

    In a group or room LINE names the writer only when they allowed it; without a userId the
    group (or room) itself is who wrote, so its conversation is still kept, as its own.
    """
    message = event.get("message")
    user_id, chat = source_ids(event)
    event_id = event.get("webhookEventId") or (message or {}).get("id")
    if not isinstance(message, dict) or not chat or not isinstance(event_id, str):
        return None
    message_id = message.get("id")
    return InboundMessage(
        channel=Channel.line, external_id=event_id[:255],
        provider_message_id=message_id[:255] if isinstance(message_id, str) and message_id else None,
        sender=Sender(name=name if user_id else None, line_id=user_id or chat),
        body_text=message_text(message)[:100_000],
        conversation_key=f"line:{chat}", received_at=_received_at(event),
    )


def _received_at(event: dict[str, Any]) -> datetime | None:
    timestamp = event.get("timestamp")
    return (boundary.epoch_time(timestamp, per_second=1000)
            if isinstance(timestamp, int | float) and not isinstance(timestamp, bool) else None)


def to_edit(event: dict[str, Any], *, name: str | None) -> Amendment | None:
    """A ``messageEdited`` event: the new text of the message it names (LINE's message id)."""
    inbound, at = to_inbound(event, name=name), _received_at(event)
    target = inbound.provider_message_id if inbound else None
    if inbound is None or target is None or at is None:
        return None
    return Amendment(provider="line", delivery_id=inbound.external_id, target_id=target, at=at,
                     body_text=inbound.body_text,
                     fallback=inbound.model_copy(update={"provider_message_id": None}))


async def handle_event(session: AsyncSession, event: dict[str, Any], *, name: str | None,
                       settings: Settings) -> None:
    """Apply one webhook event: a message is ingested; follow and unfollow mark the customer."""
    if event.get("mode") == "standby":  # another module answers this chat right now
        return
    kind = event.get("type")
    if kind == "messageEdited":
        edit = to_edit(event, name=name)
        if edit is not None:
            await amendments.apply(session, edit, options=ticket_ingest.IngestOptions(
                region=settings.default_region))
        return
    if kind == "message":
        inbound = to_inbound(event, name=name)
        if inbound is None:
            return
        result = await ticket_ingest.ingest(session, inbound, options=ticket_ingest.IngestOptions(
            region=settings.default_region))
        found = media_of(event["message"])
        if found is not None and not result.duplicate:  # a redelivery fetches nothing again
            content_id, kind, filename = found
            media.enqueue(session, message_id=result.message_id, provider="line",
                          media_id=content_id, kind=kind, filename=filename)
        return
    user_id, _ = source_ids(event)
    event_id = event.get("webhookEventId")
    if kind not in ("follow", "unfollow") or not user_id or not isinstance(event_id, str):
        return
    if not await receipts.first_delivery(session, provider="line", delivery_id=event_id):
        return
    customer = await customers.resolve(session, identities=customers.identities_of(line_id=user_id),
                                       name=name, region=settings.default_region)
    tags = [t for t in customer.tags if t != BLOCKED_TAG]
    customer.tags = [*tags, BLOCKED_TAG] if kind == "unfollow" else tags


async def fetch_content(item: media.Pending, settings: Settings, http: httpx.AsyncClient,
                        max_bytes: int) -> list[InboundAttachment]:
    """Download what a user sent from LINE's content API (202 means: not ready, try later)."""
    if not settings.line_channel_access_token:
        raise media.FetchError("LINE_CHANNEL_ACCESS_TOKEN is not configured")
    base = settings.line_data_api_base.rstrip("/")
    data, content_type = await media.download(
        http, f"{base}/v2/bot/message/{quote(item.media_id, safe='')}/content",
        headers={"Authorization": f"Bearer {settings.line_channel_access_token}"},
        max_bytes=max_bytes)
    return [InboundAttachment(filename=media.filename_for(item, content_type),
                              content_type=content_type, data=data)]


def _chunks(text: str) -> list[str]:
    text = text.strip() or " "
    return [text[i:i + MAX_TEXT] for i in range(0, len(text), MAX_TEXT)][:MAX_MESSAGES]


async def send_push(context: OutboundContext) -> str | None:
    """Send an operator's reply as a push message; the retry key makes repeats harmless."""
    settings = context.settings
    if not settings.line_channel_access_token:
        raise SendError("LINE_CHANNEL_ACCESS_TOKEN is not configured")
    key = context.conversation_key or ""
    to = key.removeprefix("line:") if key.startswith("line:") else next(
        iter(context.identities.get("line", [])), None)
    if not to:
        raise SendError("no LINE user to send to", permanent=True)
    response = await context.http.post(
        f"{settings.line_api_base.rstrip('/')}/v2/bot/message/push",
        json={"to": to, "messages": [{"type": "text", "text": c} for c in _chunks(context.body_text)]},
        headers={"Authorization": f"Bearer {settings.line_channel_access_token}",
                 "X-Line-Retry-Key": str(uuid.uuid5(uuid.NAMESPACE_URL, context.idempotency_key))},
    )
    if response.status_code == 409:  # an earlier attempt was accepted: it was sent, once
        return response.headers.get("x-line-accepted-request-id")
    if response.status_code >= 300:
        raise SendError(f"LINE answered {response.status_code}: {response.text[:300]}",
                        permanent=400 <= response.status_code < 500 and response.status_code != 429)
    sent = (response.json().get("sentMessages") or [{}])[0]
    return str(sent.get("id")) if sent.get("id") else response.headers.get("x-line-request-id")
