"""Email in (corpus of real-world Japanese mail, threading, dedupe, IMAP) and out (SMTP)."""

import asyncio
import base64
import email
from email.message import Message as MimeMessage
from email.policy import compat32
from pathlib import Path

import aiosmtplib
import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.channels.email import charset
from helpdesk.channels.email import compose as mail_compose
from helpdesk.channels.email import headers as mail_headers
from helpdesk.channels.email import service as mail
from helpdesk.channels.email import tasks as email_tasks
from helpdesk.channels.models import ImapCursor
from helpdesk.customers.models import Customer
from helpdesk.db import utcnow
from helpdesk.inboxes.models import Inbox
from helpdesk.realtime.log import event_sessions
from helpdesk.tickets.models import Attachment, Message, Ticket
from tests.support.channels import reply
from tests.support.database import count, fetch, get
from tests.support.fakes import FakeIMAP, FakeSMTP
from tests.support.inbound import INBOUND_HEADERS
from tests.support.server import LiveServer, make_settings
from tests.support.waiting import wait_until

MAIL = Path(__file__).resolve().parent.parent / "data" / "mail"
TOKEN = "0123456789abcdef"

# file → (from name, subject, the new text, the quoted history's first line or None)
CORPUS = {
    "iso2022jp_nec.eml": ("山田 太郎", "①注文の件（㈱山田商店）",
                          "いつもお世話になっております。\n㈱山田商店の山田です。\n\n"
                          "注文番号①の商品が届いていません。\n数量はⅢ箱です。\n\nよろしくお願いいたします。",
                          None),
    "iso2022jp_no_charset.eml": (None, "返品について", "返品の手続きについて教えてください。\n佐藤", None),
    "shift_jis.eml": ("髙橋 花子", "商品交換のお願い①",
                      "お世話になります。\n髙橋です。①と②の商品を交換したいです。\n"
                      "～よろしくお願いします～", None),
    "euc_jp.eml": ("鈴木 一郎", "住所変更",
                   "配送先の住所を変更したいのですが、可能でしょうか。\n"
                   "東京都千代田区丸の内１丁目２番３号", None),
    "multipart_alternative_attachments.eml": (
        "Keiko Tanaka", "お見積りと請求書", "お見積りをお送りします。\n添付の請求書をご確認ください。", None),
    "outlook_reply_no_references.eml": ("山田 太郎", "RE: ①注文の件 [#1001]",
                                        "承知しました。土曜日の午前中でお願いします。",
                                        "________________________________"),
    "auto_reply.eml": ("山田 太郎", "不在通知: Re: ①注文の件 [#1001]",
                       "ただいま休暇中のため、5月10日以降に返信いたします。", None),
    "gmail_reply_quoted.eml": (
        "Keiko Tanaka", "Re: 発送のお知らせ [#1001]", "ありがとうございます。届きました！",
        "2024年5月7日(火) 9:00 ショップサポート <support+0123456789abcdef@shop.example>:"),
    # SMTPUTF8 and old mobile mailers write header text as raw 8-bit bytes, no encoded words
    "raw_utf8_headers.eml": ("髙﨑 ｶﾅ", "注文番号①の件（㈱髙﨑）",
                             "注文番号①の商品について、㈱髙﨑のｶﾅです。\n届いた箱が潰れていました（写真あり）！",
                             None),
    "raw_sjis_headers.eml": ("髙橋 ﾊﾅｺ", "返品のご相談②（至急）",
                             "②の商品を返品したいです。\n表示と色が違いました～。", None),
    # iPhone's Mail forwarding a shop's mail: the forwarded text is the message
    "apple_mail_forward.eml": (
        "山本 花子", "Fwd: 【ショップ通販】ご注文の発送について",
        "iPhoneから送信\n\n転送されたメッセージ:\n\n> 差出人: ショップ通販 <info@shop.example>\n"
        "> 日付: 2026年11月28日 18:02:11 JST\n> 宛先: hanako@example.jp\n"
        "> 件名: 【ショップ通販】ご注文の発送について\n> \n"
        "> ご注文番号 #1042 の商品を本日発送しました。\n> お届け予定日：11月30日", None),
}


def raw(name: str) -> bytes:
    return (MAIL / name).read_bytes()


async def post_mail(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post("/webhooks/email", content=data,
                             headers={**INBOUND_HEADERS, "Content-Type": "message/rfc822"})


@pytest.mark.parametrize("name", sorted(CORPUS))
async def test_corpus_ingests_with_the_right_text(name: str, chttp: httpx.AsyncClient,
                                                  db: AsyncSession) -> None:
    author, subject, text, quoted = CORPUS[name]
    parsed = mail.parse(raw(name))
    assert (parsed.from_name, parsed.subject, parsed.text) == (author, subject, text)
    assert (parsed.quoted.splitlines()[0] if parsed.quoted else None) == quoted
    assert "\ufffd" not in parsed.text + parsed.subject
    response = await post_mail(chttp, raw(name))
    assert response.status_code == 201, response.text
    stored = (await fetch(db, select(Message)))[0]
    assert stored.body_text == text and stored.external_id == parsed.message_id
    assert stored.auto_reply is (name == "auto_reply.eml")
    ticket = (await fetch(db, select(Ticket)))[0]
    assert ticket.subject == subject and ticket.channel == "email"  # stored as written
    customer = (await fetch(db, select(Customer)))[0]
    assert customer.name == author


@pytest.mark.parametrize(("name", "subject", "text"), [
    # au writes its pictographs in ISO-2022-JP rows 85–92; 血液型 then B型 (row 90) and a heart
    ("au_pictographs.eml", "テスト⚠", "テスト⚠です\n血液型🅱です❤"),
    # docomo in Shift_JIS F8–F9; F040 is no pictograph of theirs: one U+FFFD, nothing stray
    ("docomo_pictographs.eml", "お礼☀", "届きました☀ありがとう❤\n汗💦と謎\ufffd"),
])
def test_carrier_pictographs_become_emoji(name: str, subject: str, text: str) -> None:
    parsed = mail.parse(raw(name))
    assert (parsed.subject, parsed.text) == (subject, text)
    assert not any("\ue000" <= ch <= "\uf8ff" for ch in parsed.subject + parsed.text)


def test_pictograph_rows_decode_without_stray_characters() -> None:
    # Unknown sender: au's rows 85–88 still read as pictographs; a pair no table knows is one
    # U+FFFD (CP932 alone gives U+FFFD and then the trail byte as a stray kana: テスト\ufffdヘ).
    assert charset.decode(b"\x1b$B%F%9%Hu:\x1b(B", "iso-2022-jp") == "テスト⚠"
    assert charset.decode(b"\x1b$B%F%9%H~M\x1b(B", "iso-2022-jp") == "テスト\ufffd"
    assert charset.decode(b"\x83e\x83X\x83g\xeb\xcd", "shift_jis") == "テスト\ufffd"
    # CP50220's NEC-selected IBM kanji share rows 89–92 with au: kanji unless the mail is au's
    assert charset.decode(b"\x1b$Bzj\x1b(B", "iso-2022-jp") == "湜"
    assert charset.decode(b"\x1b$Bzj\x1b(B", "iso-2022-jp", carrier="kddi") == "🅱"
    # SoftBank's FB rows are IBM kanji in CP932 (髙) unless the sender is SoftBank's
    assert charset.decode(b"\xfb\xfc", "shift_jis") == "髙"
    assert charset.decode("①㈱髙﨑（）！ｶﾅ".encode("cp932"), None) == "①㈱髙﨑（）！ｶﾅ"


def test_smartphones_private_use_pictographs_become_emoji_for_their_carrier_only() -> None:
    # docomo's and au's UTF-8 mail carries their private-use code points (U+E63E is docomo's sun;
    # au's U+E481 a warning sign, U+EB26 blood type A, U+EB3C a turkey leg)
    assert charset.decode("晴れ\ue63e".encode(), "utf-8", carrier="docomo") == "晴れ☀"
    assert charset.decode("\ue481\ueb26\ueb3c".encode(), "utf-8", carrier="kddi") == "⚠🅰🍗"
    assert charset.decode("\ue481".encode(), "utf-8") == "\ue481"  # someone else's own character
    raw_mail = ("From: hanako@docomo.ne.jp\r\nSubject: =?UTF-8?B?"
                + base64.b64encode("お礼\ue63e".encode()).decode() + "?=\r\n"
                "Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                "ありがとう\ue63e\r\n").encode()
    parsed = mail.parse(raw_mail)
    assert (parsed.subject, parsed.text) == ("お礼☀", "ありがとう☀")


def test_headers_mix_encoded_words_and_raw_bytes() -> None:
    raw_sjis = "㈱髙﨑".encode("cp932").decode("ascii", "surrogateescape")
    # a character split across two encoded words of one charset is joined before decoding
    split = "=?UTF-8?B?" + "5rOo5paH55Wq5Y+3"[:8] + "?= =?UTF-8?B?" + "5rOo5paH55Wq5Y+3"[8:] + "?="
    assert mail_headers.decode_header_value(split) == "注文番号"
    assert mail_headers.decode_header_value(f"{raw_sjis} =?UTF-8?B?Pz8=?=") == "㈱髙﨑 ??"
    assert mail_headers.decode_header_value("=?UTF-8?B?not base64!?=") == "=?UTF-8?B?not base64!?="


async def test_attachments_inline_images_and_hostile_html(chttp: httpx.AsyncClient,
                                                          db: AsyncSession) -> None:
    assert (await post_mail(chttp, raw("multipart_alternative_attachments.eml"))).status_code == 201
    files = {a.filename: a for a in await fetch(db, select(Attachment))}
    assert set(files) == {"logo.png", "請求書.pdf", "見積.csv"}
    assert files["logo.png"].content_id == "logo@shop" and files["logo.png"].data.startswith(b"\x89PNG")
    assert files["請求書.pdf"].content_type == "application/pdf"
    assert files["請求書.pdf"].data.startswith(b"%PDF")
    assert charset.decode(files["見積.csv"].data, "shift_jis") == "品名,数量\nりんご,3\n"
    html = (await fetch(db, select(Message)))[0].body_html or ""
    assert "<script" not in html and "onclick" not in html and "alert" not in html
    assert 'src="cid:logo@shop"' in html and "tracker.example" not in html
    assert "javascript:" not in html and "請求書" in html


async def test_threading_by_references_token_and_subject_number(
        chttp: httpx.AsyncClient, db: AsyncSession, operator: dict[str, str]) -> None:
    first = (await post_mail(chttp, raw("iso2022jp_nec.eml"))).json()
    ticket_id = first["ticket_id"]
    async with db.begin():
        await db.execute(update(Ticket).where(Ticket.id == ticket_id).values(token=TOKEN))
    ticket = await get(db, Ticket, ticket_id)
    assert ticket.number == 1001
    resolved = await chttp.patch(f"/api/tickets/{ticket_id}", headers=operator,
                                 json={"version": ticket.version, "status": "resolved"})
    assert resolved.status_code == 200

    auto = (await post_mail(chttp, raw("auto_reply.eml"))).json()
    assert auto["ticket_id"] == ticket_id
    assert (await get(db, Ticket, ticket_id)).status == "resolved"  # auto-replies never reopen

    outlook = (await post_mail(chttp, raw("outlook_reply_no_references.eml"))).json()
    assert outlook["ticket_id"] == ticket_id  # no References: the token in the address threads
    assert (await get(db, Ticket, ticket_id)).status == "unhandled"

    tagged = raw("iso2022jp_nec.eml").replace(b"Message-ID: <000001da9b6f$1c2d3e40$54576bc0$",
                                              b"Message-ID: <tagged-only").replace(
        b"Subject: =?ISO-2022-JP?", b"Subject: Re: [#1001] =?ISO-2022-JP?")
    assert (await post_mail(chttp, tagged)).json()["ticket_id"] == ticket_id

    stranger = tagged.replace(b"yamada@yamada-shoten.example", b"other@example.net").replace(
        b"tagged-only", b"stranger")
    assert (await post_mail(chttp, stranger)).json()["ticket_id"] != ticket_id  # tag needs the customer

    again = await post_mail(chttp, raw("iso2022jp_nec.eml"))
    assert again.status_code == 200 and again.json() == {**first, "duplicate": True}
    assert await count(db, Message) == 5


async def test_email_webhook_refuses_bad_tokens_and_bodies(chttp: httpx.AsyncClient,
                                                           http: httpx.AsyncClient,
                                                           db: AsyncSession) -> None:
    data = raw("shift_jis.eml")
    no_token = await chttp.post("/webhooks/email", content=data)
    wrong = await chttp.post("/webhooks/email", content=data, headers={"Authorization": "Bearer x"})
    empty = await post_mail(chttp, b"  \r\n")
    not_mail = await post_mail(chttp, b"hello, this is not an email\r\n")
    huge = await post_mail(chttp, data + b"x" * (10 * 1024 * 1024))
    codes = [r.status_code for r in (no_token, wrong, empty, not_mail, huge)]
    assert codes == [401, 401, 422, 422, 413]
    assert not_mail.json()["detail"] == "not an email message: no From address"
    assert await count(db, Message) == 0


def test_replies_compose_as_iso_2022_jp_or_fall_back_to_utf8() -> None:
    common = {"message_id": 7, "ticket_number": 1001, "ticket_subject": "①注文の件", "token": TOKEN,
              "author": "佐藤", "to_email": "yamada@example.jp", "to_name": "山田 太郎",
              "inbox_email": "support@shop.example", "fallback_from": "x@y.example",
              "charset_name": "iso-2022-jp", "in_reply_to": "orig@example.jp",
              "references": ["orig@example.jp", "sha256:abc"], "now": utcnow()}
    jis = mail_compose.compose_reply(body_text="㈱山田商店 様\n①の件、承知しました。", **common)  # type: ignore[arg-type]
    parsed = email.message_from_bytes(jis.raw, policy=compat32)
    assert parsed.get_content_charset() == "iso-2022-jp"
    assert b"\x1b$B" in jis.raw and all(b < 0x80 for b in jis.raw)  # 7-bit clean
    assert mail.parse(jis.raw).text == "㈱山田商店 様\n①の件、承知しました。"
    assert mail_headers.decode_header_value(parsed["Subject"]) == "Re: ①注文の件 [#1001]"
    assert parsed["Message-ID"] == f"<helpdesk.7.{TOKEN}@shop.example>"
    assert parsed["In-Reply-To"] == "<orig@example.jp>" and "sha256" not in parsed["References"]
    assert parsed["Reply-To"] == f"support+{TOKEN}@shop.example"
    emoji = mail_compose.compose_reply(body_text="ありがとうございます😀", **common)  # type: ignore[arg-type]
    assert email.message_from_bytes(emoji.raw, policy=compat32).get_content_charset() == "utf-8"
    assert mail.parse(emoji.raw).text == "ありがとうございます😀"


async def test_round_trip_through_real_smtp(live_server: LiveServer, fake_smtp: FakeSMTP,
                                            db: AsyncSession, staff) -> None:  # type: ignore[no-untyped-def]
    from tests.support.staff import Staff

    async with db.begin():
        await db.execute(update(Inbox).where(Inbox.name == "default").values(
            email_address="support@shop.example", email_charset="iso-2022-jp"))
    headers = Staff.headers(await staff.create("sato", inboxes=["default"]))
    host, port = email_tasks.listen_address(live_server.settings.smtp_listen or "")
    await aiosmtplib.send(raw("iso2022jp_nec.eml"), sender="yamada@yamada-shoten.example",
                          recipients=["support@shop.example"], hostname=host, port=port)
    ticket = (await fetch(db, select(Ticket)))[0]

    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as client:
        sent = await reply(client, headers, ticket.id, "山田様\n①の商品は明日お届けします。\n㈱ショップ 佐藤")

        async def delivered() -> bool:
            return bool(fake_smtp.messages)

        await wait_until(delivered)
        mail_from, rcpt, data = fake_smtp.messages[0]
        assert (mail_from, rcpt) == ("support@shop.example", ["yamada@yamada-shoten.example"])
        out = email.message_from_bytes(data, policy=compat32)
        assert out.get_content_charset() == "iso-2022-jp"
        assert out["In-Reply-To"] == "<000001da9b6f$1c2d3e40$54576bc0$@yamada-shoten.example>"
        assert out["Reply-To"] == f"support+{ticket.token}@shop.example"
        assert mail.parse(data).text == "山田様\n①の商品は明日お届けします。\n㈱ショップ 佐藤"

        async def marked() -> Message | None:
            found = await get(db, Message, sent["id"])
            return found if found.delivery_status == "sent" else None

        outbound = await wait_until(marked)
        assert f"<{outbound.external_id}>" == out["Message-ID"]

        answer = MimeMessage()
        answer["From"] = "yamada@yamada-shoten.example"
        answer["To"] = "support@shop.example"  # an answer to the Message-ID, not the token
        answer["Subject"] = "Re: " + str(out["Subject"])
        answer["Message-ID"] = "<answer-1@yamada-shoten.example>"
        answer["In-Reply-To"] = out["Message-ID"]
        answer.set_payload("ありがとうございます。待っています。".encode("iso2022_jp"), "iso-2022-jp")
        await aiosmtplib.send(answer.as_bytes(), sender="yamada@yamada-shoten.example",
                              recipients=["support@shop.example"], hostname=host, port=port)

        async def answered() -> list[Message]:
            return await fetch(db, select(Message).where(
                Message.external_id == "answer-1@yamada-shoten.example"))

        landed = (await wait_until(answered))[0]
        assert landed.ticket_id == ticket.id and landed.body_text == "ありがとうございます。待っています。"
        assert await count(db, Ticket) == 1
        detail = (await client.get(f"/api/tickets/{ticket.id}", headers=headers)).json()
        assert [m["direction"] for m in detail["messages"]] == ["in", "out", "in"]
        assert detail["status"] == "unhandled"


async def test_smtp_listener_refuses_what_is_not_mail(live_server: LiveServer, db: AsyncSession) -> None:
    host, port = email_tasks.listen_address(live_server.settings.smtp_listen or "")
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await aiosmtplib.send(b"Subject: no sender at all\r\n\r\nhi\r\n", sender="x@example.com",
                              recipients=["support@shop.example"], hostname=host, port=port)
    assert refused.value.code == 550
    assert await count(db, Message) == 0


async def test_imap_polling_reads_each_message_once(database_url: str, engine, db: AsyncSession) -> None:  # type: ignore[no-untyped-def]
    with FakeIMAP("support", "imap-pass") as server:
        server.mailbox.messages = {3: raw("shift_jis.eml"), 5: raw("euc_jp.eml")}
        settings = make_settings(database_url, imap_url=f"imap://support:imap-pass@127.0.0.1:{server.port}/INBOX")
        sessionmaker = event_sessions(engine)
        assert await email_tasks.poll_imap(sessionmaker, settings) == 2
        assert server.mailbox.fetches == [3, 5] and server.mailbox.seen == {3, 5}
        assert await email_tasks.poll_imap(sessionmaker, settings) == 0
        assert server.mailbox.fetches == [3, 5]  # nothing fetched twice
        server.mailbox.messages[9] = raw("iso2022jp_nec.eml")
        assert await email_tasks.poll_imap(sessionmaker, settings) == 1
        assert server.mailbox.fetches == [3, 5, 9]
        cursor = (await fetch(db, select(ImapCursor)))[0]
        assert (cursor.uid_validity, cursor.last_uid) == (7, 9)
        assert sorted(m.body_text[:8] for m in await fetch(db, select(Message))) == sorted(
            ["お世話になります", "配送先の住所を変", "いつもお世話になっ"[:8]])
        server.user = "someone-else"
        with pytest.raises(Exception, match="AUTHENTICATIONFAILED"):
            await email_tasks.poll_imap(sessionmaker, settings)
    await asyncio.sleep(0)  # one loop turn: the refused connection's transport closes before the loop ends
