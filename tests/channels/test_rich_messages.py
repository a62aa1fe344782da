"""Messages that are not plain text, posted signed over real HTTP: the customer's choice on a
button or list, reactions kept on the message reacted to, locations with a map link, contacts,
orders, system notices, edits that keep their history, Messenger and Instagram button taps, and
LINE group conversations without a userId."""

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.realtime.models import Event
from helpdesk.tickets.models import Message, Ticket
from tests.support.channels import post_line, post_meta
from tests.support.database import fetch

WA_ID = "819012345678"
MAP = "https://www.google.com/maps/search/?api=1&query="


def whatsapp(*messages: dict[str, Any]) -> dict[str, Any]:
    """A WhatsApp Cloud API delivery of ``messages`` (each: id, type and its object)."""
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [{
        "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "81312345678", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "鈴木 花子"}, "wa_id": WA_ID}],
            "messages": [{"from": WA_ID, "timestamp": "1714525200", **m} for m in messages]}}]}]}


def messaging(*items: dict[str, Any], obj: str = "page", sender: str = "6789012345678901") -> dict[str, Any]:
    """A Messenger (or Instagram) delivery of ``items`` from one sender to the Page."""
    return {"object": obj, "entry": [{"id": "PAGE1", "time": 1714525200000, "messaging": [
        {"sender": {"id": sender}, "recipient": {"id": "PAGE1"}, "timestamp": 1714525200000 + n, **item}
        for n, item in enumerate(items)]}]}


def line_event(kind: str, message: dict[str, Any], *, event_id: str, source: dict[str, Any],
               timestamp: int = 1714525200000) -> dict[str, Any]:
    return {"destination": "U" + "f" * 32, "events": [{
        "type": kind, "mode": "active", "timestamp": timestamp, "source": source,
        "webhookEventId": event_id, "deliveryContext": {"isRedelivery": False},
        "message": message}]}


async def bodies(db: AsyncSession) -> dict[str | None, str]:
    return {m.external_id: m.body_text for m in await fetch(db, select(Message))}


async def message_with(db: AsyncSession, external_id: str) -> Message:
    found = await fetch(db, select(Message).where(Message.external_id == external_id))
    assert len(found) == 1, found
    return found[0]


async def test_whatsapp_choices_locations_contacts_orders_and_system_notices_read_as_text(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    response = await post_meta(chttp, whatsapp(
        {"id": "wamid.BTN", "type": "interactive", "interactive": {
            "type": "button_reply", "button_reply": {"id": "yes-1", "title": "はい、交換希望"}}},
        {"id": "wamid.LIST", "type": "interactive", "interactive": {
            "type": "list_reply", "list_reply": {"id": "slot-2", "title": "午前中",
                                                  "description": "8時〜12時"}}},
        {"id": "wamid.QR", "type": "button", "button": {"payload": "STOP", "text": "配信停止"}},
        {"id": "wamid.LOC", "type": "location", "location": {
            "latitude": 35.6812, "longitude": 139.7671, "name": "東京駅",
            "address": "東京都千代田区丸の内１丁目"}},
        {"id": "wamid.CARD", "type": "contacts", "contacts": [{
            "name": {"formatted_name": "髙﨑 一郎", "first_name": "一郎", "last_name": "髙﨑"},
            "phones": [{"phone": "+81 90-1111-2222", "wa_id": "819011112222", "type": "CELL"}],
            "emails": [{"email": "ichiro@example.jp", "type": "WORK"}]}]},
        {"id": "wamid.ORDER", "type": "order", "order": {
            "catalog_id": "CAT1", "text": "至急お願いします", "product_items": [
                {"product_retailer_id": "SKU-①", "quantity": 2, "item_price": 1980,
                 "currency": "JPY"}]}},
        {"id": "wamid.SYS", "type": "system", "system": {
            "body": "User A changed from 819012345678 to 819099998888",
            "wa_id": "819099998888", "type": "user_changed_number"}},
    ))
    assert response.status_code == 200 and response.json() == {"received": 7}
    found = await bodies(db)
    assert found["wamid.BTN"] == "はい、交換希望"
    assert found["wamid.LIST"] == "午前中\n8時〜12時"
    assert found["wamid.QR"] == "配信停止"
    assert found["wamid.LOC"] == f"[位置情報]\n東京駅\n東京都千代田区丸の内１丁目\n{MAP}35.6812%2C139.7671"
    assert found["wamid.CARD"] == "[連絡先]\n髙﨑 一郎 / +81 90-1111-2222 / ichiro@example.jp"
    assert found["wamid.ORDER"] == "[注文]\n至急お願いします\nSKU-① ×2 1980 JPY"
    assert found["wamid.SYS"] == "[システム]\nUser A changed from 819012345678 to 819099998888"


async def test_whatsapp_reactions_sit_on_the_message_reacted_to(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    await post_meta(chttp, whatsapp({"id": "wamid.Q", "type": "text", "text": {"body": "届きました"}}))
    react = whatsapp({"id": "wamid.R1", "type": "reaction",
                      "reaction": {"message_id": "wamid.Q", "emoji": "👍"}})
    for _ in range(2):  # Meta delivers at least once
        assert (await post_meta(chttp, react)).status_code == 200
    reacted = await message_with(db, "wamid.Q")
    assert [r["emoji"] for r in reacted.reactions or []] == ["👍"]
    assert len(await fetch(db, select(Message))) == 1  # no message of its own
    updates = await fetch(db, select(Event).where(Event.type == "message.updated"))
    assert [e.data["reactions"][0]["emoji"] for e in updates] == ["👍"]  # told once
    await post_meta(chttp, whatsapp({"id": "wamid.R2", "type": "reaction",
                                     "reaction": {"message_id": "wamid.Q", "emoji": ""}}))
    assert (await message_with(db, "wamid.Q")).reactions is None  # taken back
    # A reaction to something not here (sent from the phone before) is kept as a message.
    await post_meta(chttp, whatsapp({"id": "wamid.R3", "type": "reaction",
                                     "reaction": {"message_id": "wamid.ELSEWHERE", "emoji": "❤️"}}))
    assert (await message_with(db, "wamid.R3")).body_text == "[リアクション] ❤️"


async def test_whatsapp_edits_update_the_original_and_keep_its_history(
        chttp: httpx.AsyncClient, db: AsyncSession, operator: dict[str, str]) -> None:
    await post_meta(chttp, whatsapp({"id": "wamid.ORIG", "type": "text", "text": {"body": "注文番号①の件"}}))
    edit = whatsapp({"id": "wamid.EDIT1", "type": "edit", "timestamp": "1714525260", "edit": {
        "original_message_id": "wamid.ORIG",
        "message": {"type": "text", "text": {"body": "注文番号②の件です"}}}})
    for _ in range(2):
        assert (await post_meta(chttp, edit)).status_code == 200
    edited = await message_with(db, "wamid.ORIG")
    assert edited.body_text == "注文番号②の件です"
    assert [v["body_text"] for v in edited.history or []] == ["注文番号①の件", "注文番号②の件です"]
    assert len(await fetch(db, select(Message))) == 1
    detail = (await chttp.get(f"/api/tickets/{edited.ticket_id}", headers=operator)).json()
    assert detail["messages"][0]["history"][0]["body_text"] == "注文番号①の件"
    page = (await chttp.get(f"/tickets/{edited.ticket_id}", headers=operator)).text
    assert "注文番号①の件" in page and "注文番号②の件です" in page  # the earlier text is shown too
    found = (await chttp.get("/api/tickets", params={"q": "②の件"}, headers=operator)).json()
    assert [t["id"] for t in found["items"]] == [edited.ticket_id]


async def test_messenger_postbacks_reactions_and_edits(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    delivery = messaging(
        {"postback": {"title": "はじめる", "payload": "GET_STARTED"}},  # "Get Started": no mid
        {"postback": {"mid": "m_TAP", "title": "配送状況を確認", "payload": "TRACK"}},
        {"message": {"mid": "m_TEXT", "text": "サイズ交換できますか"}},
        {"reaction": {"reaction": "love", "emoji": "❤️", "action": "react", "mid": "m_TEXT"}},
        {"message_edit": {"mid": "m_TEXT", "text": "サイズ交換は可能ですか", "num_edit": 1}},
    )
    for _ in range(2):
        assert (await post_meta(chttp, delivery)).status_code == 200
    messages = await fetch(db, select(Message).order_by(Message.id))
    assert [m.body_text for m in messages] == ["はじめる", "配送状況を確認", "サイズ交換は可能ですか"]
    assert messages[0].external_id == "postback:6789012345678901:1714525200000"
    text = messages[2]
    assert [r["emoji"] for r in text.reactions or []] == ["❤️"]
    assert [v["body_text"] for v in text.history or []] == ["サイズ交換できますか", "サイズ交換は可能ですか"]
    assert len({m.ticket_id for m in messages}) == 1  # one conversation
    await post_meta(chttp, messaging({"reaction": {"action": "unreact", "mid": "m_TEXT"}}))
    assert (await message_with(db, "m_TEXT")).reactions is None


async def test_instagram_postbacks_reactions_and_edits(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    await post_meta(chttp, messaging(
        {"message": {"mid": "ig_TEXT", "text": "在庫ありますか"}},
        {"postback": {"mid": "ig_TAP", "title": "店舗を探す", "payload": "STORES"}},
        {"reaction": {"reaction": "like", "emoji": "👍", "action": "react", "mid": "ig_TEXT"}},
        {"message_edit": {"mid": "ig_TEXT", "text": "Mサイズの在庫ありますか", "num_edit": 1}},
        obj="instagram", sender="17841400000000000"))
    messages = await fetch(db, select(Message).order_by(Message.id))
    assert [(m.channel, m.body_text) for m in messages] == [
        ("instagram", "Mサイズの在庫ありますか"), ("instagram", "店舗を探す")]
    assert [r["emoji"] for r in messages[0].reactions or []] == ["👍"]
    assert [v["body_text"] for v in messages[0].history or []] == ["在庫ありますか",
                                                                   "Mサイズの在庫ありますか"]


async def test_line_groups_without_a_user_id_edits_and_locations(
        chttp: httpx.AsyncClient, db: AsyncSession) -> None:
    group = {"type": "group", "groupId": "C" + "1" * 32}  # the writer did not share their id
    text = {"id": "5550001", "type": "text", "text": "グループから失礼します"}
    assert (await post_line(chttp, line_event("message", text, event_id="E-G-1",
                                              source=group))).status_code == 200
    (ticket,) = await fetch(db, select(Ticket))
    assert ticket.conversation_key == "line:C" + "1" * 32
    where = {"id": "5550002", "type": "location", "title": "渋谷店", "address": "東京都渋谷区",
             "latitude": 35.658, "longitude": 139.7016}
    await post_line(chttp, line_event("message", where, event_id="E-G-2", source=group))
    assert (await message_with(db, "E-G-2")).body_text == (
        f"[位置情報]\n渋谷店\n東京都渋谷区\n{MAP}35.658%2C139.7016")
    # Edits may arrive out of order: the latest timestamp is the text shown.
    late = line_event("messageEdited", {**text, "text": "グループから失礼します（訂正2）"},
                      event_id="E-G-4", source=group, timestamp=1714525320000)
    early = line_event("messageEdited", {**text, "text": "グループから失礼します（訂正1）"},
                       event_id="E-G-3", source=group, timestamp=1714525260000)
    for delivery in (late, early, late):
        assert (await post_line(chttp, delivery)).status_code == 200
    edited = await message_with(db, "E-G-1")
    assert edited.body_text == "グループから失礼します（訂正2）"
    assert [v["body_text"] for v in edited.history or []] == [
        "グループから失礼します", "グループから失礼します（訂正1）", "グループから失礼します（訂正2）"]
    messages = await fetch(db, select(Message))
    assert len(messages) == 2 and {m.ticket_id for m in messages} == {ticket.id}
    room = {"type": "room", "roomId": "R" + "2" * 32}
    await post_line(chttp, line_event("message", {"id": "5550003", "type": "text", "text": "ルームです"},
                                      event_id="E-R-1", source=room))
    rooms = await fetch(db, select(Ticket).where(Ticket.conversation_key == "line:R" + "2" * 32))
    assert len(rooms) == 1 and rooms[0].id != ticket.id  # its own conversation
