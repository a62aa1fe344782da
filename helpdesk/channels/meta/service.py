"""Meta: Messenger, Instagram and WhatsApp Cloud webhooks in; Send API / Cloud API out.

A thread's ``conversation_key`` records where to answer: ``meta:<platform>:<account>:<user>``,
the account being the Page, Instagram account or WhatsApp phone number id that was written to.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.channels import webhooks
from helpdesk.config import Settings
from helpdesk.outbox.service import OutboundContext, SendError
from helpdesk.tickets import service as tickets
from helpdesk.tickets.models import Channel, InboundMessage, Sender

log = logging.getLogger(__name__)

NAME_TIMEOUT_SECONDS = 3.0  # Meta waits for the webhook's answer; a name is not worth more
_names = webhooks.TTLCache()
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


# ---- sender names ------------------------------------------------------------------------------

# The Graph API fields that name a sender, per platform (a Page-scoped or Instagram-scoped id).
PROFILE_FIELDS = {"messenger": "first_name,last_name,name", "instagram": "name,username"}


async def sender_name(http: httpx.AsyncClient, settings: Settings, platform: str,
                      user_id: str) -> str | None:
    """A Messenger or Instagram sender's name from the Graph API (None when it cannot be had).

    Cached like LINE display names; a slow or failing Graph API only costs the name.
    """
    key = f"{platform}:{user_id}"
    found, name = _names.get(key)
    if found:
        return name
    fields = PROFILE_FIELDS.get(platform)
    if fields is None or not settings.meta_access_token:
        return None
    url = f"{settings.meta_api_base.rstrip('/')}/{settings.meta_graph_version}/{quote(user_id, safe='')}"
    try:
        response = await http.get(url, params={"fields": fields}, timeout=NAME_TIMEOUT_SECONDS,
                                  headers={"Authorization": f"Bearer {settings.meta_access_token}"})
        profile = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError) as exc:
        log.warning("Graph profile of %s unavailable: %s", key, exc)
        return None
    if response.status_code >= 500:
        return None  # worth asking again next time
    name = _profile_name(profile) if isinstance(profile, dict) else None
    _names.put(key, name)
    return name


def _profile_name(profile: dict[str, Any]) -> str | None:
    name = _str(profile.get("name"))
    if name:
        return name
    parts = [p for p in (_str(profile.get("first_name")), _str(profile.get("last_name"))) if p]
    return " ".join(parts) or _str(profile.get("username"))


async def with_names(http: httpx.AsyncClient, settings: Settings,
                     messages: list[InboundMessage]) -> list[InboundMessage]:
    """The messages, Messenger and Instagram senders named from their profiles where possible."""
    named: list[InboundMessage] = []
    for inbound in messages:
        platform, _, user_id = (inbound.sender.meta_id or "").partition(":")
        if inbound.sender.name is None and user_id:
            name = await sender_name(http, settings, platform, user_id)
            if name:
                inbound = inbound.model_copy(
                    update={"sender": inbound.sender.model_copy(update={"name": name})})
        named.append(inbound)
    return named


async def ingest_payload(session: AsyncSession, payload: dict[str, Any], *,
                         settings: Settings, http: httpx.AsyncClient | None = None) -> int:
    """Ingest every message in a webhook payload, committing each; returns how many were new."""
    new = 0
    options = tickets.IngestOptions(region=settings.default_region)
    messages = [*messaging_events(payload), *whatsapp_events(payload)]
    if http is not None:
        messages = await with_names(http, settings, messages)
    for inbound in messages:
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
