"""Meta media: photos and files sent on Messenger, Instagram and WhatsApp are downloaded after
the webhook answers and attached to their message."""

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.channels.media import MediaWorker
from helpdesk.channels.models import MediaFetch
from helpdesk.realtime.models import Event
from helpdesk.tickets.models import Attachment, Message
from tests.support.channels import META_TOKEN, post_meta
from tests.support.database import count, fetch
from tests.support.fakes import Content, FakeMeta

PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 20 + b"\xff\xd9"
RECEIPT = b"%PDF-1.4 receipt"


def messenger_attachments(mid: str, attachments: list[dict[str, Any]], *, obj: str = "page",
                          sender: str = "6789012345678901") -> dict[str, Any]:
    """A Messenger (or Instagram) webhook body with a message carrying ``attachments``."""
    return {"object": obj, "entry": [{"id": "112233445566778", "time": 1714525200000, "messaging": [{
        "sender": {"id": sender}, "recipient": {"id": "112233445566778"},
        "timestamp": 1714525200000, "message": {"mid": mid, "attachments": attachments}}]}]}


def image(url: str, kind: str = "image") -> dict[str, Any]:
    return {"type": kind, "payload": {"url": url}}


def whatsapp_media(wamid: str, kind: str, content: dict[str, Any]) -> dict[str, Any]:
    """A WhatsApp Cloud API webhook body with one image/document/audio… message."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "81312345678", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Hanako Suzuki"}, "wa_id": "819012345678"}],
            "messages": [{"from": "819012345678", "id": wamid, "timestamp": "1714525200",
                          "type": kind, kind: content}]}}]}]}


async def test_messenger_photos_are_fetched_after_the_webhook_and_attached(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta,
        media_worker: MediaWorker) -> None:
    fake_meta.cdn["451234_n.jpg"] = Content(PHOTO, "image/jpeg")
    fake_meta.cdn["451235_n.png"] = Content(PHOTO[::-1], "image/png")
    payload = messenger_attachments("m_PHOTOS", [image(fake_meta.cdn_url("451234_n.jpg")),
                                                 image(fake_meta.cdn_url("451235_n.png"))])
    response = await post_meta(chttp, payload)
    assert response.status_code == 200 and response.json() == {"received": 1}
    assert fake_meta.fetches("/cdn/") == 0  # the webhook only recorded what to fetch
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "[画像] [画像]"

    assert await media_worker.run_once() == 1
    stored = await fetch(db, select(Attachment).order_by(Attachment.id))
    assert [(a.message_id, a.filename, a.content_type, a.data) for a in stored] == [
        (message.id, "451234_n.jpg", "image/jpeg", PHOTO),
        (message.id, "451235_n.png", "image/png", PHOTO[::-1])]
    assert await count(db, MediaFetch) == 0
    updated = await fetch(db, select(Event).where(Event.type == "message.updated"))
    assert [len(e.data["attachments"]) for e in updated] == [2]
    assert await media_worker.run_once() == 0


async def test_instagram_video_without_a_name_gets_one_from_its_type(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta,
        media_worker: MediaWorker) -> None:
    fake_meta.cdn["clip"] = Content(b"\x00\x00\x00\x18ftypmp42", "video/mp4")
    payload = messenger_attachments("ig_VIDEO", [image(fake_meta.cdn_url("clip"), "video")],
                                    obj="instagram")
    assert (await post_meta(chttp, payload)).status_code == 200
    assert await media_worker.run_once() == 1
    message = (await fetch(db, select(Message)))[0]
    stored = (await fetch(db, select(Attachment)))[0]
    assert (message.channel, message.body_text) == ("instagram", "[動画]")
    assert stored.filename == f"meta-video-{message.id}-1.mp4"


async def test_whatsapp_document_is_found_through_the_graph_api_with_the_token(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta,
        media_worker: MediaWorker) -> None:
    fake_meta.media["1037543291543636"] = Content(RECEIPT, "application/pdf")
    payload = whatsapp_media("wamid.DOC", "document", {
        "id": "1037543291543636", "mime_type": "application/pdf", "sha256": "abc",
        "filename": "領収書.pdf", "caption": "領収書を送ります"})
    assert (await post_meta(chttp, payload)).status_code == 200
    assert await media_worker.run_once() == 1
    asked = [(r.path, r.headers.get("Authorization")) for r in fake_meta.requests]
    assert asked == [("/v21.0/1037543291543636", f"Bearer {META_TOKEN}"),
                     ("/whatsapp-media/1037543291543636", f"Bearer {META_TOKEN}")]
    message = (await fetch(db, select(Message)))[0]
    stored = (await fetch(db, select(Attachment)))[0]
    assert message.body_text == "[ファイル] 領収書を送ります"
    assert (stored.message_id, stored.filename, stored.content_type, stored.data) == (
        message.id, "領収書.pdf", "application/pdf", RECEIPT)


async def test_whatsapp_media_over_the_cap_is_not_downloaded(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta,
        media_worker: MediaWorker) -> None:
    fake_meta.media["2222"] = Content(b"v" * (1024 * 1024 + 1), "video/mp4")
    await post_meta(chttp, whatsapp_media("wamid.BIG", "video", {"id": "2222", "mime_type": "video/mp4"}))
    assert await media_worker.run_once() == 1
    assert fake_meta.fetches("/whatsapp-media/") == 0  # the Graph API's size was enough to refuse
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "[動画]\n（1 MiB を超えるため保存していません）"
    assert await count(db, Attachment) == 0 and await count(db, MediaFetch) == 0


async def test_a_redelivered_message_fetches_once(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta,
        media_worker: MediaWorker) -> None:
    fake_meta.cdn["again.jpg"] = Content(PHOTO)
    payload = messenger_attachments("m_AGAIN", [image(fake_meta.cdn_url("again.jpg"))])
    assert (await post_meta(chttp, payload)).status_code == 200
    assert await media_worker.run_once() == 1
    assert (await post_meta(chttp, payload)).json() == {"received": 0}
    assert await media_worker.run_once() == 0
    assert fake_meta.fetches("/cdn/") == 1
    assert await count(db, Attachment) == 1 and await count(db, Message) == 1


async def test_addresses_outside_meta_are_never_fetched(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta,
        media_worker: MediaWorker) -> None:
    inside = f"http://127.0.0.1:{fake_meta.port + 1}/cdn/v/t1/secret.jpg"  # another local port
    payload = messenger_attachments("m_SSRF", [image(inside), image("file:///etc/passwd")])
    assert (await post_meta(chttp, payload)).status_code == 200
    assert await media_worker.run_once() == 1
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "[画像] [画像]\n（内容を取得できませんでした）"
    assert await count(db, Attachment) == 0 and await count(db, MediaFetch) == 0


async def test_stickers_locations_and_odd_attachments_keep_their_placeholder(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta) -> None:
    odd: list[dict[str, Any]] = [
        image(fake_meta.cdn_url("sticker.png"), "sticker"),
        {"type": "location", "payload": {"coordinates": {"lat": 35.68, "long": 139.76}}},
        {"type": "image", "payload": "not an object"},
        {"type": "image"},
        {"type": "file", "payload": {"url": ["not", "a", "string"]}},
        image("https://cdn.example.com/" + "x" * 5000),  # too long to keep whole
    ]
    response = await post_meta(chttp, messenger_attachments("m_ODD", odd))
    assert response.status_code == 200 and response.json() == {"received": 1}
    assert await count(db, MediaFetch) == 0
    message = (await fetch(db, select(Message)))[0]
    # A location is text with its map link (shown, never fetched); the rest keep a placeholder.
    assert message.body_text == "\n".join([
        "[スタンプ]", "[位置情報]\nhttps://www.google.com/maps/search/?api=1&query=35.68%2C139.76",
        "[画像]", "[画像]", "[ファイル]", "[画像]"])
    hostile = {"object": "page", "entry": [{"id": "1", "messaging": [
        {"sender": "6789", "recipient": ["x"], "message": {"mid": "m_HOSTILE", "text": "hi"}}]}]}
    assert (await post_meta(chttp, hostile)).status_code == 200
    assert await count(db, Message) == 1


async def test_photos_show_inline_and_nothing_else_does(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_meta: FakeMeta,
        media_worker: MediaWorker, operator: dict[str, str]) -> None:
    fake_meta.cdn["shown.jpg"] = Content(PHOTO, "image/jpeg")
    fake_meta.cdn["disguised.png"] = Content(b"<svg onload=alert(1)></svg>", "image/png")
    fake_meta.cdn["receipt.pdf"] = Content(RECEIPT, "application/pdf")
    await post_meta(chttp, messenger_attachments("m_SHOWN", [
        image(fake_meta.cdn_url("shown.jpg")), image(fake_meta.cdn_url("disguised.png")),
        image(fake_meta.cdn_url("receipt.pdf"), "file")]))
    await post_meta(chttp, messenger_attachments("m_OTHER", [image(fake_meta.cdn_url("shown.jpg"))],
                                                 sender="1111222233334444"))
    assert await media_worker.run_once() == 2
    shown, disguised, receipt, elsewhere = await fetch(db, select(Attachment).order_by(Attachment.id))
    ticket_id = (await fetch(db, select(Message).where(Message.id == shown.message_id)))[0].ticket_id
    other_ticket = (await fetch(db, select(Message).where(Message.id == elsewhere.message_id)))[0].ticket_id
    assert ticket_id != other_ticket

    page = (await chttp.get(f"/tickets/{ticket_id}", headers=operator)).text
    base = f"/tickets/{ticket_id}/attachments"
    assert f'<img src="{base}/{shown.id}/preview" alt="shown.jpg"' in page
    assert f'<img src="{base}/{disguised.id}/preview"' in page  # it says PNG; its bytes decide
    assert f"{base}/{receipt.id}/preview" not in page

    preview = await chttp.get(f"{base}/{shown.id}/preview", headers=operator)
    assert preview.status_code == 200 and preview.content == PHOTO
    assert preview.headers["content-type"] == "image/jpeg"
    assert preview.headers["x-content-type-options"] == "nosniff"
    assert "sandbox" in preview.headers["content-security-policy"]
    refused = [await chttp.get(f"{base}/{a.id}/preview", headers=operator) for a in (disguised, receipt)]
    assert [r.status_code for r in refused] == [415, 415]
    assert all(b"svg" not in r.content for r in refused)
    foreign = await chttp.get(f"{base}/{elsewhere.id}/preview", headers=operator)
    assert foreign.status_code == 404
    anonymous = await chttp.get(f"{base}/{shown.id}/preview", follow_redirects=False)
    assert anonymous.status_code in (302, 303, 401) and anonymous.content != PHOTO
