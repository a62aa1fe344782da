"""Meta webhook payloads read into messages and amendments (Messenger and Instagram, WhatsApp Cloud)."""

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from helpdesk import boundary
from helpdesk.channels.amendments import Amendment
from helpdesk.channels.meta import rich
from helpdesk.channels.models import MEDIA_REFERENCE_MAX
from helpdesk.tickets.models import Channel, InboundMessage, Sender

PROVIDER = "meta"
# What is downloaded (and WhatsApp's stickers, WebP images behind a media id); locations,
# shares and the like are shown as text (rich.py).
FETCHED_KINDS = frozenset({"image", "video", "audio", "file", "document"})


def text_of(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _when(value: object, divisor: int) -> datetime | None:
    return boundary.epoch_time(value, per_second=divisor)


@dataclass(frozen=True)
class Media:
    """What a message carries that is to be downloaded (see ``fetch_content``)."""

    reference: str  # a WhatsApp media id, or attachment URLs one per line
    kind: str
    filename: str | None = None


@dataclass(frozen=True)
class Received:
    message: InboundMessage
    media: Media | None = None


def messaging_events(payload: dict[str, Any]) -> Iterator[Received | Amendment]:
    """Messenger (``object: page``) and Instagram (``object: instagram``) messages, button taps
    (postbacks, "Get Started" included), reactions and edits."""
    platform = {"page": "messenger", "instagram": "instagram"}.get(str(payload.get("object")))
    if platform is None:
        return
    for entry in _dicts(payload.get("entry")):
        for item in _dicts(entry.get("messaging")):
            sender = text_of(_inner(item, "sender").get("id"))
            account = text_of(_inner(item, "recipient").get("id")) or text_of(entry.get("id"))
            if not sender or not account:
                continue
            found = _messaging_item(item, platform, sender, account)
            if found is not None:
                yield found


def _messaging_item(item: dict[str, Any], platform: str, sender: str,
                    account: str) -> Received | Amendment | None:
    at = _when(item.get("timestamp"), 1000)
    base = InboundMessage(channel=Channel(platform), external_id="-",
                          sender=Sender(meta_id=f"{platform}:{sender}"),
                          conversation_key=f"meta:{platform}:{account}:{sender}", received_at=at)
    if isinstance(item.get("postback"), dict):
        return _postback(item["postback"], base, sender, item.get("timestamp"))
    if isinstance(item.get("reaction"), dict):
        return _messaging_reaction(item["reaction"], base, sender, at)
    if isinstance(item.get("message_edit"), dict):
        return _messaging_edit(item["message_edit"], base, at)
    message = item.get("message")
    if not isinstance(message, dict) or message.get("is_echo"):
        return None
    mid = text_of(message.get("mid"))
    if mid is None:
        return None
    attachments = _dicts(message.get("attachments"))
    text = text_of(message.get("text")) or rich.messenger_attachments_text(attachments)
    return Received(base.model_copy(update={"external_id": mid[:255], "body_text": text}),
                    _attachment_media(attachments))


def _postback(postback: dict[str, Any], base: InboundMessage, sender: str,
              timestamp: object) -> Received | None:
    """A button the customer tapped: what the button said (its payload when it has no title)."""
    text = text_of(postback.get("title")) or text_of(postback.get("payload"))
    key = text_of(postback.get("mid")) or (f"postback:{sender}:{timestamp}" if timestamp else None)
    if text is None or key is None:
        return None
    return Received(base.model_copy(update={"external_id": key[:255], "body_text": text}))


def _messaging_reaction(reaction: dict[str, Any], base: InboundMessage, sender: str,
                        at: datetime | None) -> Amendment | None:
    mid = text_of(reaction.get("mid"))
    if mid is None or at is None:
        return None
    emoji = text_of(reaction.get("emoji")) if reaction.get("action") != "unreact" else None
    key = f"reaction:{sender}:{mid}:{int(at.timestamp() * 1000)}"
    return Amendment(provider=PROVIDER, delivery_id=key, target_id=mid, at=at, reaction=True,
                     emoji=emoji, fallback=base.model_copy(update={
                         "external_id": key[:255], "body_text": f"[リアクション] {emoji or ''}".strip()}))


def _messaging_edit(edit: dict[str, Any], base: InboundMessage,
                    at: datetime | None) -> Amendment | None:
    mid, text = text_of(edit.get("mid")), edit.get("text")
    if mid is None or at is None or not isinstance(text, str):
        return None
    key = f"edit:{mid}:{edit.get('num_edit')}"
    return Amendment(provider=PROVIDER, delivery_id=key, target_id=mid, at=at, body_text=text,
                     fallback=base.model_copy(update={"external_id": key[:255], "body_text": text}))


def _attachment_media(attachments: list[dict[str, Any]]) -> Media | None:
    """The downloadable attachments (photos, videos, audio, files) of a Messenger or Instagram
    message, as many whole URLs as a fetch row holds; stickers, locations and shares are not."""
    urls: list[str] = []
    kinds: list[str] = []
    for attachment in attachments:
        url = text_of(_inner(attachment, "payload").get("url"))
        kind = str(attachment.get("type"))
        if kind not in FETCHED_KINDS or url is None or "\n" in url:
            continue
        if sum(len(u) + 1 for u in urls) + len(url) > MEDIA_REFERENCE_MAX:
            break
        urls.append(url)
        kinds.append(kind)
    if not urls:
        return None
    return Media("\n".join(urls), kinds[0] if len(set(kinds)) == 1 else "file")


def whatsapp_events(payload: dict[str, Any]) -> Iterator[Received | Amendment]:
    """WhatsApp Cloud API messages (``object: whatsapp_business_account``)."""
    if payload.get("object") != "whatsapp_business_account":
        return
    for entry in _dicts(payload.get("entry")):
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if change.get("field") != "messages" or not isinstance(value, dict):
                continue
            phone_id = text_of(_inner(value, "metadata").get("phone_number_id"))
            names = {c.get("wa_id"): _inner(c, "profile").get("name")
                     for c in _dicts(value.get("contacts"))}
            for message in _dicts(value.get("messages")):
                inbound = _whatsapp_message(message, phone_id, names)
                if inbound is not None:
                    yield inbound


def _whatsapp_message(message: dict[str, Any], phone_id: str | None,
                      names: dict[Any, Any]) -> Received | Amendment | None:
    wa_id, mid = text_of(message.get("from")), text_of(message.get("id"))
    if not wa_id or not mid or not phone_id:
        return None
    kind = str(message.get("type", ""))
    name = names.get(wa_id)
    base = InboundMessage(
        channel=Channel.whatsapp, external_id=mid[:255],
        sender=Sender(name=name if isinstance(name, str) else None, phone=f"+{wa_id.lstrip('+')}"),
        conversation_key=f"meta:whatsapp:{phone_id}:{wa_id}",
        received_at=_when(message.get("timestamp"), 1),
    )
    if kind in ("reaction", "edit"):
        return _whatsapp_change(kind, message, base)
    content = _inner(message, kind)
    media_id = text_of(content.get("id"))
    media = Media(media_id, kind, text_of(content.get("filename"))) if (
        media_id and kind in FETCHED_KINDS | {"sticker"} and "\n" not in media_id) else None
    return Received(base.model_copy(update={"body_text": rich.whatsapp_text(kind, message)}), media)


def _whatsapp_change(kind: str, message: dict[str, Any], base: InboundMessage) -> Amendment | None:
    """A reaction (on the message it names) or an edit (of the original message)."""
    at = base.received_at
    content = _inner(message, kind)
    if at is None:
        return None
    body: str | None = None
    emoji: str | None = None
    if kind == "reaction":
        target, emoji = text_of(content.get("message_id")), text_of(content.get("emoji"))
        text = f"[リアクション] {emoji or ''}".strip()
    else:
        edited = _inner(content, "message")
        target = text_of(content.get("original_message_id"))
        body = text = rich.whatsapp_text(str(edited.get("type", "text")), edited)
    if target is None:
        return None
    return Amendment(provider=PROVIDER, delivery_id=base.external_id, target_id=target, at=at,
                     reaction=kind == "reaction", emoji=emoji, body_text=body,
                     fallback=base.model_copy(update={"body_text": text}))


def _inner(value: dict[str, Any], key: str) -> dict[str, Any]:
    """``value[key]`` when that is an object, else an empty one (payloads are not trusted)."""
    inner = value.get(key)
    return inner if isinstance(inner, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
