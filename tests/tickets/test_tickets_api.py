"""The tickets API: status rules, optimistic concurrency, replies, claims, visibility, search."""

import asyncio

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role, User
from helpdesk.inboxes import service as inbox_service
from helpdesk.outbox.models import OutboxItem
from helpdesk.tickets.models import Message
from tests.support.inbound import inbound_body, post_inbound
from tests.support.staff import Staff


async def new_ticket(http: httpx.AsyncClient, key: str = "t1", **kwargs: object) -> int:
    body = {**inbound_body(), **kwargs}
    response = await post_inbound(http, key, body)
    assert response.status_code == 201, response.text
    return int(response.json()["ticket_id"])


async def get(http: httpx.AsyncClient, user: User, ticket_id: int) -> dict:
    response = await http.get(f"/api/tickets/{ticket_id}", headers=Staff.headers(user))
    assert response.status_code == 200, response.text
    return response.json()


async def test_ticket_detail_has_messages_and_customer(http: httpx.AsyncClient, staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    ticket_id = await new_ticket(http, **{"from": {"name": "山田 太郎", "phone": "090-1234-5678"}})
    detail = await get(http, op, ticket_id)
    assert detail["status"] == "unhandled" and detail["version"] == 1
    assert [m["body_text"] for m in detail["messages"]] == ["注文の件で質問です"]
    assert detail["messages"][0]["direction"] == "in"
    assert detail["customer"]["name"] == "山田 太郎"
    assert detail["customer"]["phones"] == ["+819012345678"]
    assert set(detail) >= {"id", "number", "subject", "status", "pending_reason", "priority",
                           "channel", "customer_id", "assignee_id", "tags", "version",
                           "created_at", "updated_at", "first_response_at", "last_message_at"}


async def test_two_concurrent_patches_with_one_version(http: httpx.AsyncClient, staff: Staff) -> None:
    sup = await staff.create("sup", role=Role.supervisor)
    ticket_id = await new_ticket(http)
    patches = [{"version": 1, "status": "in_progress"}, {"version": 1, "priority": "high"}]
    responses = await asyncio.gather(*(
        http.patch(f"/api/tickets/{ticket_id}", json=p, headers=Staff.headers(sup))
        for p in patches))
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 409], [r.text for r in responses]
    winner = next(r for r in responses if r.status_code == 200).json()
    loser = next(r for r in responses if r.status_code == 409).json()
    assert winner["version"] == 2
    assert loser["current"] == winner  # the conflict carries the ticket as it now is
    assert isinstance(loser["detail"], str)


async def test_pending_needs_a_reason_and_bad_values_are_422(http: httpx.AsyncClient,
                                                             staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    ticket_id = await new_ticket(http)
    headers = Staff.headers(op)
    no_reason = await http.patch(f"/api/tickets/{ticket_id}", json={"version": 1, "status": "pending"},
                                 headers=headers)
    bad_status = await http.patch(f"/api/tickets/{ticket_id}", json={"version": 1, "status": "done"},
                                  headers=headers)
    no_version = await http.patch(f"/api/tickets/{ticket_id}", json={"status": "resolved"},
                                  headers=headers)
    assert (no_reason.status_code, bad_status.status_code, no_version.status_code) == (422, 422, 422)
    assert (await get(http, op, ticket_id))["version"] == 1  # nothing changed
    ok = await http.patch(f"/api/tickets/{ticket_id}", headers=headers, json={
        "version": 1, "status": "pending", "pending_reason": "お客様の返信待ち", "tags": ["返品", "VIP"]})
    assert ok.status_code == 200, ok.text
    assert ok.json()["pending_reason"] == "お客様の返信待ち"
    assert ok.json()["tags"] == ["VIP", "返品"]


async def test_new_inbound_returns_ticket_to_unhandled_unless_no_action(
        http: httpx.AsyncClient, staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    body = {"external_id": "conv-1"}
    ticket_id = await new_ticket(http, "m1", **body)
    await http.patch(f"/api/tickets/{ticket_id}", headers=Staff.headers(op),
                     json={"version": 1, "status": "pending", "pending_reason": "確認中"})
    await new_ticket(http, "m2", **body)
    after = await get(http, op, ticket_id)
    assert after["status"] == "unhandled" and after["pending_reason"] is None
    await http.patch(f"/api/tickets/{ticket_id}", headers=Staff.headers(op),
                     json={"version": after["version"], "status": "no_action"})
    await new_ticket(http, "m3", **body)
    final = await get(http, op, ticket_id)
    assert final["status"] == "no_action"
    assert len(final["messages"]) == 3


async def test_reply_goes_to_outbox_sets_first_response_and_guards_version(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession) -> None:
    a = await staff.create("a", inboxes=["default"])
    b = await staff.create("b", inboxes=["default"])
    ticket_id = await new_ticket(http)
    first = await http.post(f"/api/tickets/{ticket_id}/messages", headers=Staff.headers(a),
                            json={"body": "確認いたします。", "version": 1})
    assert first.status_code == 201, first.text
    assert first.json()["direction"] == "out" and first.json()["delivery_status"] == "queued"
    stale = await http.post(f"/api/tickets/{ticket_id}/messages", headers=Staff.headers(b),
                            json={"body": "確認いたします。", "version": 1})
    assert stale.status_code == 409
    assert stale.json()["current"]["version"] == 2
    ticket = await get(http, a, ticket_id)
    assert ticket["first_response_at"] is not None
    assert ticket["assignee_id"] == a.id and ticket["status"] == "in_progress"
    outbound = [m for m in ticket["messages"] if m["direction"] == "out"]
    assert len(outbound) == 1  # the stale reply was not stored
    assert await db.scalar(select(func.count()).select_from(OutboxItem)) == 1


async def test_two_operators_replying_at_once_send_one_reply(http: httpx.AsyncClient, staff: Staff,
                                                            db: AsyncSession) -> None:
    a = await staff.create("a", inboxes=["default"])
    b = await staff.create("b", inboxes=["default"])
    ticket_id = await new_ticket(http)
    responses = await asyncio.gather(*(
        http.post(f"/api/tickets/{ticket_id}/messages", headers=Staff.headers(u),
                  json={"body": "発送しました", "version": 1}) for u in (a, b)))
    assert sorted(r.status_code for r in responses) == [201, 409]
    sent = await db.scalar(select(func.count()).select_from(Message).where(Message.direction == "out"))
    assert sent == 1
    assert await db.scalar(select(func.count()).select_from(OutboxItem)) == 1


async def test_internal_note_is_not_sent(http: httpx.AsyncClient, staff: Staff,
                                         db: AsyncSession) -> None:
    op = await staff.create("op", inboxes=["default"])
    ticket_id = await new_ticket(http)
    note = await http.post(f"/api/tickets/{ticket_id}/messages", headers=Staff.headers(op),
                           json={"body": "常連のお客様", "internal": True, "version": 1})
    assert note.status_code == 201 and note.json()["internal"] is True
    assert note.json()["delivery_status"] is None
    assert await db.scalar(select(func.count()).select_from(OutboxItem)) == 0
    assert (await get(http, op, ticket_id))["first_response_at"] is None


async def test_claim(http: httpx.AsyncClient, staff: Staff) -> None:
    a = await staff.create("a", inboxes=["default"])
    b = await staff.create("b", inboxes=["default"])
    ticket_id = await new_ticket(http)
    mine = await http.post(f"/api/tickets/{ticket_id}/claim", headers=Staff.headers(a))
    assert mine.status_code == 200 and mine.json()["assignee_id"] == a.id
    again = await http.post(f"/api/tickets/{ticket_id}/claim", headers=Staff.headers(a))
    assert again.status_code == 200
    theirs = await http.post(f"/api/tickets/{ticket_id}/claim", headers=Staff.headers(b))
    assert theirs.status_code == 409 and theirs.json()["current"]["assignee_id"] == a.id


async def test_operators_see_only_their_inboxes(http: httpx.AsyncClient, staff: Staff,
                                                db: AsyncSession) -> None:
    await inbox_service.create_inbox(db, name="other")
    await db.commit()
    member = await staff.create("member", inboxes=["default"])
    outsider = await staff.create("outsider", inboxes=["other"])
    nobody = await staff.create("nobody")
    sup = await staff.create("sup", role=Role.supervisor)
    ticket_id = await new_ticket(http)
    for user, visible in ((member, True), (outsider, False), (nobody, False), (sup, True)):
        listed = await http.get("/api/tickets", headers=Staff.headers(user))
        assert [t["id"] for t in listed.json()["items"]] == ([ticket_id] if visible else [])
        one = await http.get(f"/api/tickets/{ticket_id}", headers=Staff.headers(user))
        assert one.status_code == (200 if visible else 404)
        patch = await http.patch(f"/api/tickets/{ticket_id}", headers=Staff.headers(user),
                                 json={"version": 1, "priority": "low"})
        assert patch.status_code in ((200, 409) if visible else (404,))


async def test_operator_cannot_assign_to_others_but_supervisor_can(http: httpx.AsyncClient,
                                                                   staff: Staff) -> None:
    a = await staff.create("a", inboxes=["default"])
    b = await staff.create("b", inboxes=["default"])
    sup = await staff.create("sup", role=Role.supervisor)
    ticket_id = await new_ticket(http)
    refused = await http.patch(f"/api/tickets/{ticket_id}", headers=Staff.headers(a),
                               json={"version": 1, "assignee_id": b.id})
    assert refused.status_code == 403
    done = await http.patch(f"/api/tickets/{ticket_id}", headers=Staff.headers(sup),
                            json={"version": 1, "assignee_id": b.id})
    assert done.status_code == 200 and done.json()["assignee_id"] == b.id
    stranger = await staff.create("stranger")
    not_member = await http.patch(f"/api/tickets/{ticket_id}", headers=Staff.headers(sup),
                                  json={"version": 2, "assignee_id": stranger.id})
    assert not_member.status_code == 422


async def test_list_filters_and_keyset_pagination(http: httpx.AsyncClient, staff: Staff) -> None:
    sup = await staff.create("sup", role=Role.supervisor)
    ids = [await new_ticket(http, f"k{i}", external_id=f"c{i}") for i in range(7)]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/api/tickets", params=params, headers=Staff.headers(sup))).json()
        seen += [t["id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))  # newest activity first, each exactly once
    await http.patch(f"/api/tickets/{ids[0]}", headers=Staff.headers(sup),
                     json={"version": 1, "status": "resolved", "tags": ["返品"]})
    resolved = (await http.get("/api/tickets", params={"status": "resolved"},
                               headers=Staff.headers(sup))).json()
    assert [t["id"] for t in resolved["items"]] == [ids[0]]
    tagged = (await http.get("/api/tickets", params={"tag": "返品"}, headers=Staff.headers(sup))).json()
    assert [t["id"] for t in tagged["items"]] == [ids[0]]
    none = (await http.get("/api/tickets", params={"assignee": "none", "limit": 200},
                           headers=Staff.headers(sup))).json()
    assert len(none["items"]) == 7
    bad = await http.get("/api/tickets", params={"cursor": "garbage"}, headers=Staff.headers(sup))
    assert bad.status_code == 422
    bad_assignee = await http.get("/api/tickets", params={"assignee": "x"}, headers=Staff.headers(sup))
    assert bad_assignee.status_code == 422


async def test_search_japanese_without_spaces(http: httpx.AsyncClient, staff: Staff) -> None:
    sup = await staff.create("sup", role=Role.supervisor)
    hit = await new_ticket(http, "a", body="注文した湯呑みが割れて届きました", external_id="x1",
                           **{"from": {"name": "佐藤 花子", "phone": "03-1234-5678"}})
    other = await new_ticket(http, "b", body="配送状況を教えてください", external_id="x2",
                             **{"from": {"name": "鈴木 一郎", "email": "ichiro@example.jp"}})

    async def search(q: str) -> list[int]:
        page = await http.get("/api/tickets", params={"q": q}, headers=Staff.headers(sup))
        assert page.status_code == 200, page.text
        return [t["id"] for t in page.json()["items"]]

    assert await search("湯呑み") == [hit]
    assert await search("割れて") == [hit]
    assert await search("配送") == [other]  # two characters: below a trigram, still found
    assert await search("佐藤") == [hit]  # customer name
    assert await search("ichiro@example") == [other]  # email
    assert await search("０３－１２３４－５６７８") == [hit]  # phone in another spelling
    assert await search("1234-5678") == [hit]
    assert await search("存在しない言葉") == []
    assert await search('"; DROP TABLE ticket; --') == []


async def test_counts_by_status(http: httpx.AsyncClient, staff: Staff) -> None:
    op = await staff.create("op", inboxes=["default"])
    await new_ticket(http, "a", external_id="1")
    await new_ticket(http, "b", external_id="2")
    counts = (await http.get("/api/tickets/counts", headers=Staff.headers(op))).json()
    assert counts == {"unhandled": 2, "in_progress": 0, "pending": 0, "resolved": 0, "no_action": 0}


async def test_unauthenticated_and_forged_tokens_are_refused(http: httpx.AsyncClient) -> None:
    assert (await http.get("/api/tickets")).status_code == 401
    forged = {"Authorization": "Bearer eyJ1aWQiOjF9.forged.signature"}
    assert (await http.get("/api/tickets", headers=forged)).status_code == 401
    assert (await http.get("/api/tickets/1", headers=forged)).status_code == 401
