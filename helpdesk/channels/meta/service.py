"""Meta: Messenger, Instagram and WhatsApp Cloud webhooks in; Send API / Cloud API out.

A thread's ``conversation_key`` records where to answer: ``meta:<platform>:<account>:<user>``,
the account being the Page, Instagram account or WhatsApp phone number id that was written to.
"""

import logging
import mimetypes
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk import boundary
from helpdesk.channels import media, webhooks
from helpdesk.channels.amendments import Amendment
from helpdesk.channels.amendments import apply as apply_amendment
from helpdesk.channels.meta import rich
from helpdesk.channels.models import MEDIA_REFERENCE_MAX
from helpdesk.config import Settings
from helpdesk.outbox.service import OutboundContext, SendError
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import Channel, InboundAttachment, InboundMessage, Sender

log = logging.getLogger(__name__)

NAME_TIMEOUT_SECONDS = 3.0  # Meta waits for the webhook's answer; a name is not worth more
_names = webhooks.TTLCache()
MAX_TEXT = {"messenger": 2000, "instagram": 1000, "whatsapp": 4096}
PROVIDER = "meta"
# What is downloaded (and WhatsApp's stickers, WebP images behind a media id); locations,
# shares and the like are shown as text (rich.py).
FETCHED_KINDS = frozenset({"image", "video", "audio", "file", "document"})


def _str(value: object) -> str | None:
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
            sender = _str(_inner(item, "sender").get("id"))
            account = _str(_inner(item, "recipient").get("id")) or _str(entry.get("id"))
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
    mid = _str(message.get("mid"))
    if mid is None:
        return None
    attachments = _dicts(message.get("attachments"))
    text = _str(message.get("text")) or rich.messenger_attachments_text(attachments)
    return Received(base.model_copy(update={"external_id": mid[:255], "body_text": text}),
                    _attachment_media(attachments))


def _postback(postback: dict[str, Any], base: InboundMessage, sender: str,
              timestamp: object) -> Received | None:
    """A button the customer tapped: what the button said (its payload when it has no title)."""
    text = _str(postback.get("title")) or _str(postback.get("payload"))
    key = _str(postback.get("mid")) or (f"postback:{sender}:{timestamp}" if timestamp else None)
    if text is None or key is None:
        return None
    return Received(base.model_copy(update={"external_id": key[:255], "body_text": text}))


def _messaging_reaction(reaction: dict[str, Any], base: InboundMessage, sender: str,
                        at: datetime | None) -> Amendment | None:
    mid = _str(reaction.get("mid"))
    if mid is None or at is None:
        return None
    emoji = _str(reaction.get("emoji")) if reaction.get("action") != "unreact" else None
    key = f"reaction:{sender}:{mid}:{int(at.timestamp() * 1000)}"
    return Amendment(provider=PROVIDER, delivery_id=key, target_id=mid, at=at, reaction=True,
                     emoji=emoji, fallback=base.model_copy(update={
                         "external_id": key[:255], "body_text": f"[リアクション] {emoji or ''}".strip()}))


def _messaging_edit(edit: dict[str, Any], base: InboundMessage,
                    at: datetime | None) -> Amendment | None:
    mid, text = _str(edit.get("mid")), edit.get("text")
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
        url = _str(_inner(attachment, "payload").get("url"))
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
            phone_id = _str(_inner(value, "metadata").get("phone_number_id"))
            names = {c.get("wa_id"): _inner(c, "profile").get("name")
                     for c in _dicts(value.get("contacts"))}
            for message in _dicts(value.get("messages")):
                inbound = _whatsapp_message(message, phone_id, names)
                if inbound is not None:
                    yield inbound


def _whatsapp_message(message: dict[str, Any], phone_id: str | None,
                      names: dict[Any, Any]) -> Received | Amendment | None:
    wa_id, mid = _str(message.get("from")), _str(message.get("id"))
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
    media_id = _str(content.get("id"))
    media = Media(media_id, kind, _str(content.get("filename"))) if (
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
        target, emoji = _str(content.get("message_id")), _str(content.get("emoji"))
        text = f"[リアクション] {emoji or ''}".strip()
    else:
        edited = _inner(content, "message")
        target = _str(content.get("original_message_id"))
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
                     received: list[Received]) -> list[Received]:
    """The messages, Messenger and Instagram senders named from their profiles where possible."""
    named: list[Received] = []
    for item in received:
        inbound = item.message
        platform, _, user_id = (inbound.sender.meta_id or "").partition(":")
        if inbound.sender.name is None and user_id:
            name = await sender_name(http, settings, platform, user_id)
            if name:
                inbound = inbound.model_copy(
                    update={"sender": inbound.sender.model_copy(update={"name": name})})
                item = Received(inbound, item.media)
        named.append(item)
    return named


async def ingest_payload(session: AsyncSession, payload: dict[str, Any], *,
                         settings: Settings, http: httpx.AsyncClient | None = None) -> int:
    """Ingest every message in a webhook payload, committing each; returns how many were new.

    Photos and files are queued for download with their message (``fetch_content`` gets them
    after Meta has its answer); a redelivered message queues nothing again.
    """
    new = 0
    options = ticket_ingest.IngestOptions(region=settings.default_region)
    found = [*messaging_events(payload), *whatsapp_events(payload)]
    received = [f for f in found if isinstance(f, Received)]
    if http is not None:
        received = await with_names(http, settings, received)
    for item in received:
        result = await ticket_ingest.ingest(session, item.message, options=options)
        if item.media is not None and not result.duplicate:
            media.enqueue(session, message_id=result.message_id, provider=PROVIDER,
                          media_id=item.media.reference, kind=item.media.kind,
                          filename=item.media.filename)
        await session.commit()
        new += not result.duplicate
    # Edits and reactions after the messages of the same delivery, which they may name.
    for change in (f for f in found if isinstance(f, Amendment)):
        new += await apply_amendment(session, change, options=options)
        await session.commit()
    return new


# ---- media ------------------------------------------------------------------------------------


async def fetch_content(item: media.Pending, settings: Settings, http: httpx.AsyncClient,
                        max_bytes: int) -> list[InboundAttachment]:
    """Download a message's photos and files.

    Messenger and Instagram hand over signed CDN URLs, fetched as they are. WhatsApp hands over
    a media id: the Graph API tells where it lies, and that address wants the access token too.
    """
    if not settings.meta_access_token:
        raise media.FetchError("META_ACCESS_TOKEN is not configured")
    references = item.media_id.split("\n")
    if not references[0].startswith(("https://", "http://")):
        return [await _whatsapp_media(item, settings, http, max_bytes)]
    fetched: list[InboundAttachment] = []
    for number, url in enumerate(references, start=1):
        target = await _meta_target(url, settings)
        data, content_type = await media.download(http, target, headers={}, max_bytes=max_bytes)
        name = item.filename or _name_in(url) or f"{PROVIDER}-{item.kind}-{item.message_id}-{number}"
        fetched.append(InboundAttachment(filename=_with_extension(name, content_type),
                                         content_type=content_type, data=data))
    return fetched


async def _whatsapp_media(item: media.Pending, settings: Settings, http: httpx.AsyncClient,
                          max_bytes: int) -> InboundAttachment:
    bearer = {"Authorization": f"Bearer {settings.meta_access_token}"}
    base = f"{settings.meta_api_base.rstrip('/')}/{settings.meta_graph_version}"
    try:
        response = await http.get(f"{base}/{quote(item.media_id, safe='')}", headers=bearer)
    except httpx.HTTPError as exc:
        raise media.FetchError(f"{type(exc).__name__}: {exc}") from exc
    media.check_status(response)
    try:
        found = response.json()
    except ValueError as exc:
        raise media.FetchError("the Graph API answered no JSON") from exc
    url = _str(found.get("url")) if isinstance(found, dict) else None
    if url is None:
        raise media.FetchError("the Graph API named no address for the media", permanent=True)
    size = found.get("file_size")
    if isinstance(size, int) and size > max_bytes:
        raise media.FetchError(f"{size} bytes is over the cap", permanent=True,
                               note=media.too_large_note(max_bytes))
    target = await _meta_target(url, settings)
    data, content_type = await media.download(http, target, headers=bearer, max_bytes=max_bytes)
    if content_type == "application/octet-stream" and _str(found.get("mime_type")):
        content_type = str(found["mime_type"]).split(";")[0].strip()
    name = item.filename or f"{PROVIDER}-{item.kind}-{item.media_id}"
    return InboundAttachment(filename=_with_extension(name, content_type),
                             content_type=content_type, data=data)


async def _meta_target(url: str, settings: Settings) -> media.Target | str:
    """Where a media URL from a webhook may be fetched: the configured Graph API base itself (as
    configured, a local stand-in included), or Meta's media hosts on public addresses only."""
    parts, base = urlsplit(url), urlsplit(settings.meta_api_base)
    if (parts.scheme, parts.netloc) == (base.scheme, base.netloc) and not parts.username:
        return url
    return await media.public_target(url, allowed_hosts=settings.meta_media_hosts)


def _name_in(url: str) -> str | None:
    """The file name at the end of a URL's path, when it has one (``…/1234_n.jpg``)."""
    last = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return last[:120] if "." in last.strip(".") else None


def _with_extension(name: str, content_type: str) -> str:
    if "." in name.strip("."):
        return name
    return name + (mimetypes.guess_extension(content_type) or "")


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
