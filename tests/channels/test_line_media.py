"""LINE media: photos, videos, audio and files users send are downloaded after the webhook answers."""

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.asyncio.client import connect

from helpdesk.channels.media import MediaWorker
from helpdesk.channels.models import MediaFetch
from helpdesk.db import utcnow
from helpdesk.realtime.models import Event
from helpdesk.tickets.models import Attachment, Message, Ticket
from tests.support.channels import line_signature, post_line
from tests.support.database import count, fetch
from tests.support.fakes import Content, FakeLineData
from tests.support.server import LiveServer
from tests.support.staff import Staff

USER = "U" + "b" * 32
PHOTO = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"  # a JPEG's frame, 10 KiB


def media_message(kind: str, message_id: str, *, event_id: str | None = None,
                  **fields: Any) -> dict[str, Any]:
    """A LINE webhook body with one image/video/audio/file message, as the platform sends it."""
    message: dict[str, Any] = {"id": message_id, "type": kind, **fields}
    if kind in ("image", "video", "audio") and "contentProvider" not in fields:
        message["contentProvider"] = {"type": "line"}
    return {"destination": "U" + "f" * 32, "events": [{
        "type": "message", "mode": "active", "timestamp": 1714525200000,
        "source": {"type": "user", "userId": USER}, "webhookEventId": event_id or f"EV{message_id}",
        "deliveryContext": {"isRedelivery": False}, "replyToken": "b60d432864f44d079f6d8efe86cf404b",
        "message": message,
    }]}


async def later(worker: MediaWorker, minutes: float) -> int:
    """One worker pass as if ``minutes`` had passed (retries are due by then)."""
    return await worker.run_once(now=utcnow() + timedelta(minutes=minutes))


async def test_photo_is_fetched_after_the_webhook_and_shown_with_the_message(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line_data: FakeLineData,
        media_worker: MediaWorker, operator: dict[str, str]) -> None:
    fake_line_data.contents["600001"] = Content(PHOTO, "image/jpeg")
    response = await post_line(chttp, media_message("image", "600001"))
    assert response.status_code == 200
    assert fake_line_data.requests == []  # the webhook only recorded what to fetch
    assert await count(db, MediaFetch) == 1
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "[画像]"

    assert await media_worker.run_once() == 1
    call = fake_line_data.requests[0]
    assert call.path == "/v2/bot/message/600001/content"
    assert call.headers["Authorization"] == "Bearer line-channel-access-token"
    stored = (await fetch(db, select(Attachment)))[0]
    assert (stored.message_id, stored.content_type, stored.data) == (message.id, "image/jpeg", PHOTO)
    assert stored.filename == "line-image-600001.jpg" and stored.size == len(PHOTO)
    assert await count(db, MediaFetch) == 0

    ticket = (await chttp.get(f"/api/tickets/{message.ticket_id}", headers=operator)).json()
    assert ticket["messages"][0]["attachments"] == [
        {"id": stored.id, "filename": "line-image-600001.jpg", "content_type": "image/jpeg",
         "size": len(PHOTO)}]
    page = await chttp.get(f"/tickets/{message.ticket_id}", headers=operator)
    assert f"/tickets/{message.ticket_id}/attachments/{stored.id}" in page.text
    download = await chttp.get(f"/tickets/{message.ticket_id}/attachments/{stored.id}",
                               headers=operator)
    assert download.status_code == 200 and download.content == PHOTO
    updated = await fetch(db, select(Event).where(Event.type == "message.updated"))
    assert [e.data["message_id"] for e in updated] == [message.id]
    assert updated[0].data["attachments"][0]["id"] == stored.id
    assert await media_worker.run_once() == 0


async def test_video_still_being_prepared_is_fetched_on_a_later_attempt(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line_data: FakeLineData,
        media_worker: MediaWorker) -> None:
    clip = b"\x00\x00\x00\x18ftypmp42" + b"v" * 5000
    fake_line_data.contents["600002"] = Content(clip, "video/mp4", before=[202, 500])
    assert (await post_line(chttp, media_message("video", "600002", duration=6000))).status_code == 200

    assert await media_worker.run_once() == 1  # 202: not ready
    assert await media_worker.run_once() == 0  # not due again yet
    pending = (await fetch(db, select(MediaFetch)))[0]
    assert pending.attempts == 1 and "202" in (pending.last_error or "")
    assert await count(db, Attachment) == 0
    assert await later(media_worker, 1) == 1  # 500: LINE had a hiccup
    assert await later(media_worker, 2) == 1
    stored = (await fetch(db, select(Attachment)))[0]
    assert stored.content_type == "video/mp4" and stored.data == clip
    assert fake_line_data.fetches("600002") == 3
    assert await count(db, MediaFetch) == 0
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "[動画]"


async def test_content_gone_or_too_big_leaves_the_placeholder_with_a_note(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line_data: FakeLineData,
        media_worker: MediaWorker) -> None:
    fake_line_data.contents["600004"] = Content(b"x" * (1024 * 1024 + 1), "audio/x-m4a")
    await post_line(chttp, media_message("image", "600003"))  # LINE no longer has it: 404
    await post_line(chttp, media_message("audio", "600004", duration=60000))
    assert await media_worker.run_once() == 2
    assert await count(db, Attachment) == 0 and await count(db, MediaFetch) == 0
    texts = sorted(m.body_text for m in await fetch(db, select(Message)))
    assert texts == ["[画像]\n（内容を取得できませんでした）",
                     "[音声]\n（1 MiB を超えるため保存していません）"]
    assert await later(media_worker, 60) == 0  # nothing left to retry
    assert fake_line_data.fetches("600003") == 1 and fake_line_data.fetches("600004") == 1


async def test_a_provider_that_keeps_failing_is_given_up_after_the_last_attempt(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line_data: FakeLineData,
        media_worker: MediaWorker) -> None:
    fake_line_data.contents["600005"] = Content(PHOTO, before=[503, 503, 503, 503])
    await post_line(chttp, media_message("image", "600005"))
    tried = [await later(media_worker, minutes) for minutes in (0, 1, 5, 60, 600)]
    assert tried == [1, 1, 1, 0, 0]  # three attempts (the worker's max_attempts), then none
    assert fake_line_data.fetches("600005") == 3
    assert await count(db, MediaFetch) == 0 and await count(db, Attachment) == 0
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "[画像]\n（内容を取得できませんでした）"


async def test_a_redelivered_event_fetches_once(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line_data: FakeLineData,
        media_worker: MediaWorker) -> None:
    fake_line_data.contents["600006"] = Content(b"%PDF-1.4 invoice", "application/pdf")
    payload = media_message("file", "600006", fileName="請求書.pdf", fileSize=16)
    redelivery = media_message("file", "600006", fileName="請求書.pdf", fileSize=16)
    redelivery["events"][0]["deliveryContext"]["isRedelivery"] = True
    assert (await post_line(chttp, payload)).status_code == 200
    assert await media_worker.run_once() == 1
    assert (await post_line(chttp, redelivery)).status_code == 200
    assert (await post_line(chttp, payload)).status_code == 200
    assert await later(media_worker, 60) == 0
    assert fake_line_data.fetches("600006") == 1
    stored = (await fetch(db, select(Attachment)))[0]
    assert (stored.filename, stored.content_type) == ("請求書.pdf", "application/pdf")
    assert await count(db, Message) == 1


async def test_forged_signature_stores_and_fetches_nothing(
        chttp: httpx.AsyncClient, db: AsyncSession, fake_line_data: FakeLineData,
        media_worker: MediaWorker) -> None:
    fake_line_data.contents["600007"] = Content(PHOTO)
    body = json.dumps(media_message("image", "600007")).encode()
    forged = await chttp.post("/webhooks/line", content=body, headers={
        "Content-Type": "application/json", "X-Line-Signature": line_signature(body, "not-the-secret")})
    assert forged.status_code == 403
    assert await media_worker.run_once() == 0
    assert await count(db, MediaFetch) == 0 and await count(db, Message) == 0
    assert fake_line_data.requests == []


async def test_content_held_elsewhere_is_linked_not_fetched(
        chttp: httpx.AsyncClient, db: AsyncSession, media_worker: MediaWorker,
        fake_line_data: FakeLineData) -> None:
    payload = media_message("image", "600008", contentProvider={
        "type": "external", "originalContentUrl": "https://cdn.example.com/photo.jpg",
        "previewImageUrl": "https://cdn.example.com/preview.jpg"})
    assert (await post_line(chttp, payload)).status_code == 200
    assert await count(db, MediaFetch) == 0
    message = (await fetch(db, select(Message)))[0]
    assert message.body_text == "[画像] https://cdn.example.com/photo.jpg"
    assert await media_worker.run_once() == 0 and fake_line_data.requests == []


async def test_the_app_fetches_in_the_background_and_operators_see_it_live(
        live_server: LiveServer, staff: Staff, db: AsyncSession,
        fake_line_data: FakeLineData) -> None:
    fake_line_data.contents["600009"] = Content(PHOTO, "image/jpeg", before=[202])
    user = await staff.create("media-op", inboxes=["default"])
    url = f"ws://127.0.0.1:{live_server.port}/ws?token={Staff.token(user)}"
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client, \
            connect(url, compression=None, proxy=None, open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "resume", "after": 0}))
        assert (await post_line(client, media_message("image", "600009"))).status_code == 200
        async with asyncio.timeout(15):
            while (frame := json.loads(await ws.recv())).get("type") != "message.updated":
                pass
    ticket = (await fetch(db, select(Ticket)))[0]
    assert frame["data"]["ticket_id"] == ticket.id
    assert [a["content_type"] for a in frame["data"]["attachments"]] == ["image/jpeg"]
    assert fake_line_data.fetches("600009") == 2  # 202 first, retried by the app's own worker
    assert (await fetch(db, select(Attachment)))[0].data == PHOTO
