"""Meta: Messenger, Instagram and WhatsApp Cloud webhooks in; Send API / Cloud API out.

A thread's ``conversation_key`` records where to answer: ``meta:<platform>:<account>:<user>``,
the account being the Page, Instagram account or WhatsApp phone number id that was written to.
"""

import logging
import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.channels import media, webhooks
from helpdesk.channels.amendments import Amendment
from helpdesk.channels.amendments import apply as apply_amendment
from helpdesk.channels.meta.payloads import PROVIDER, Received, messaging_events, text_of, whatsapp_events
from helpdesk.config import Settings
from helpdesk.outbox.service import OutboundContext, SendError
from helpdesk.tickets import ingest as ticket_ingest
from helpdesk.tickets.models import InboundAttachment

log = logging.getLogger(__name__)

NAME_TIMEOUT_SECONDS = 3.0  # Meta waits for the webhook's answer; a name is not worth more
_names = webhooks.TTLCache()
MAX_TEXT = {"messenger": 2000, "instagram": 1000, "whatsapp": 4096}


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
    name = text_of(profile.get("name"))
    if name:
        return name
    parts = [p for p in (text_of(profile.get("first_name")), text_of(profile.get("last_name"))) if p]
    return " ".join(parts) or text_of(profile.get("username"))


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
    url = text_of(found.get("url")) if isinstance(found, dict) else None
    if url is None:
        raise media.FetchError("the Graph API named no address for the media", permanent=True)
    size = found.get("file_size")
    if isinstance(size, int) and size > max_bytes:
        raise media.FetchError(f"{size} bytes is over the cap", permanent=True,
                               note=media.too_large_note(max_bytes))
    target = await _meta_target(url, settings)
    data, content_type = await media.download(http, target, headers=bearer, max_bytes=max_bytes)
    if content_type == "application/octet-stream" and text_of(found.get("mime_type")):
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
