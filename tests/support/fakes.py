"""Small local stand-ins for providers, speaking their wire protocols on 127.0.0.1.

Each runs in its own thread and event loop, so the app under test (another thread) and the
test itself reach it over real sockets.
"""

import asyncio
import re
import socketserver
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller

from tests.support.server import free_port


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


class ThreadedHTTP:
    """An aiohttp app served from a thread; subclasses add routes and record what they get."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Recorded] = []
        self.fail_next = 0  # answer 500 to this many sending requests
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def __enter__(self) -> "ThreadedHTTP":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def __exit__(self, *exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def record(self, request: web.Request) -> Recorded:
        body: Any = await request.read()
        if request.content_type == "application/json":
            body = await request.json()
        item = Recorded(request.method, request.path, dict(request.headers), body)
        self.requests.append(item)
        return item

    def failing(self) -> bool:
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False


class FakeLine(ThreadedHTTP):
    """The LINE Messaging API: profiles and push messages, honouring X-Line-Retry-Key."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.names: dict[str, str] = {}
        self.accepted_keys: dict[str, str] = {}
        self.pushed: list[dict[str, Any]] = []
        self.lose_response_next = 0  # accept the push, then answer 500 as if the reply was lost
        self.reject_next = 0  # answer 400, as LINE does for a user who cannot be messaged

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/bot/profile/{user_id}", self.profile)
        app.router.add_post("/v2/bot/message/push", self.push)

    def authorised(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def profile(self, request: web.Request) -> web.Response:
        await self.record(request)
        user_id = request.match_info["user_id"]
        if not self.authorised(request) or user_id not in self.names:
            return web.json_response({"message": "Not found"}, status=404)
        return web.json_response({"displayName": self.names[user_id], "userId": user_id,
                                  "language": "ja"})

    async def push(self, request: web.Request) -> web.Response:
        item = await self.record(request)
        if not self.authorised(request):
            return web.json_response({"message": "Authentication failed"}, status=401)
        key = request.headers.get("X-Line-Retry-Key", "")
        if key in self.accepted_keys:
            return web.json_response(
                {"message": "The retry key is already accepted"}, status=409,
                headers={"x-line-accepted-request-id": self.accepted_keys[key]})
        if self.failing():
            return web.json_response({"message": "Internal server error"}, status=500)
        if self.reject_next > 0:
            self.reject_next -= 1
            return web.json_response({"message": "The request body has 1 error(s)", "details": [
                {"message": "Invalid user ID", "property": "to"}]}, status=400)
        request_id = f"req-{len(self.pushed) + 1}"
        if key:
            self.accepted_keys[key] = request_id
        self.pushed.append(item.body)
        if self.lose_response_next > 0:
            self.lose_response_next -= 1
            return web.json_response({"message": "Internal server error"}, status=500)
        return web.json_response(
            {"sentMessages": [{"id": f"50000{len(self.pushed)}", "quoteToken": "q"}]},
            headers={"x-line-request-id": request_id})


@dataclass
class Content:
    """What FakeLineData serves for one message id: answers to give first, then the bytes."""

    data: bytes
    content_type: str = "image/jpeg"
    before: list[int] = field(default_factory=list)  # statuses answered first (202, 500…)


class FakeLineData(ThreadedHTTP):
    """LINE's content API (api-data.line.me): what users sent, 202 while still being prepared."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.contents: dict[str, Content] = {}

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/bot/message/{message_id}/content", self.content)

    def fetches(self, message_id: str) -> int:
        return sum(1 for r in self.requests if r.path == f"/v2/bot/message/{message_id}/content")

    async def content(self, request: web.Request) -> web.StreamResponse:
        await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"message": "Authentication failed"}, status=401)
        found = self.contents.get(request.match_info["message_id"])
        if found is None:
            return web.json_response({"message": "Not found"}, status=404)
        if found.before:
            status = found.before.pop(0)
            return web.Response(status=status) if status == 202 else web.json_response(
                {"message": "error"}, status=status)
        return web.Response(body=found.data, content_type=found.content_type)


class FakeMeta(ThreadedHTTP):
    """The Graph API's Send API (Messenger, Instagram) and WhatsApp Cloud API, with media: a CDN
    serving Messenger's attachment URLs as they are, and WhatsApp media behind the token."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token
        self.sent: list[Recorded] = []
        self.profiles: dict[str, dict[str, str]] = {}  # user id → the fields the Graph API has
        self.cdn: dict[str, Content] = {}  # file name under /cdn/ → what is served there
        self.media: dict[str, Content] = {}  # WhatsApp media id → its content

    def cdn_url(self, name: str) -> str:
        """A Messenger-style signed attachment URL for ``name``."""
        return f"{self.url}/cdn/v/t1.15752-9/{name}?_nc_cat=1&oh=00_AYD&oe=674F0000"

    def fetches(self, path_part: str) -> int:
        return sum(1 for r in self.requests if r.method == "GET" and path_part in r.path)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/{version}/{account}/messages", self.handle_messages)
        app.router.add_get("/cdn/v/{bucket}/{name}", self.cdn_content)
        app.router.add_get("/whatsapp-media/{media_id}", self.media_content)
        app.router.add_get("/{version}/{user_id}", self.profile)

    async def cdn_content(self, request: web.Request) -> web.Response:
        await self.record(request)
        found = self.cdn.get(request.match_info["name"])
        if found is None or "oh" not in request.query:
            return web.Response(status=403, text="URL signature expired")
        return web.Response(body=found.data, content_type=found.content_type)

    async def media_content(self, request: web.Request) -> web.Response:
        await self.record(request)
        found = self.media.get(request.match_info["media_id"])
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.Response(status=401)
        if found is None:
            return web.Response(status=404)
        return web.Response(body=found.data, content_type=found.content_type)

    async def media_info(self, request: web.Request, media_id: str) -> web.Response:
        """What the Graph API tells of a WhatsApp media id: where to download it."""
        found = self.media[media_id]
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": {"message": "Invalid OAuth access token",
                                                "type": "OAuthException", "code": 190}}, status=401)
        return web.json_response({
            "messaging_product": "whatsapp", "url": f"{self.url}/whatsapp-media/{media_id}",
            "mime_type": found.content_type, "sha256": "0" * 64, "file_size": len(found.data),
            "id": media_id})

    async def profile(self, request: web.Request) -> web.Response:
        await self.record(request)
        if request.match_info["user_id"] in self.media:
            return await self.media_info(request, request.match_info["user_id"])
        found = self.profiles.get(request.match_info["user_id"])
        if request.headers.get("Authorization") != f"Bearer {self.token}" or found is None:
            return web.json_response({"error": {"message": "Unsupported get request.",
                                                "type": "GraphMethodException", "code": 100}},
                                     status=400)
        if self.failing():
            return web.json_response({"error": {"message": "An unexpected error has occurred.",
                                                "type": "OAuthException", "code": 2}}, status=500)
        wanted = request.query.get("fields", "").split(",")
        return web.json_response({"id": request.match_info["user_id"],
                                  **{k: v for k, v in found.items() if k in wanted}})

    async def handle_messages(self, request: web.Request) -> web.Response:
        item = await self.record(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": {"message": "Invalid OAuth access token",
                                                "type": "OAuthException", "code": 190}}, status=401)
        if self.failing():
            return web.json_response({"error": {"message": "An unexpected error has occurred.",
                                                "type": "OAuthException", "code": 2}}, status=500)
        self.sent.append(item)
        body = item.body
        if body.get("messaging_product") == "whatsapp":
            return web.json_response({"messaging_product": "whatsapp",
                                      "contacts": [{"input": body["to"], "wa_id": body["to"]}],
                                      "messages": [{"id": f"wamid.OUT{len(self.sent)}"}]})
        return web.json_response({"recipient_id": body["recipient"]["id"],
                                  "message_id": f"m_OUT{len(self.sent)}"})


class _Collect:
    def __init__(self, sink: "FakeSMTP") -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.fail_next > 0:
            self.sink.fail_next -= 1
            return "451 4.3.0 try again later"
        self.sink.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                   envelope.original_content or envelope.content))
        return "250 OK"


class FakeSMTP:
    """A mail relay (aiosmtpd) that keeps what it is given."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.fail_next = 0
        self.controller = Controller(_Collect(self), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "FakeSMTP":
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass
class Mailbox:
    uid_validity: int = 7
    messages: dict[int, bytes] = field(default_factory=dict)
    seen: set[int] = field(default_factory=set)
    fetches: list[int] = field(default_factory=list)


class FakeIMAP(socketserver.ThreadingTCPServer):
    """Enough IMAP4rev1 for imaplib: LOGIN, SELECT, UID SEARCH / FETCH / STORE, LOGOUT."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, user: str, password: str) -> None:
        self.mailbox = Mailbox()
        self.user, self.password = user, password
        self.port = free_port()
        super().__init__(("127.0.0.1", self.port), _ImapSession)
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> "FakeIMAP":  # type: ignore[override]
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _ImapSession(socketserver.StreamRequestHandler):
    server: FakeIMAP

    def send(self, line: bytes) -> None:
        self.wfile.write(line + b"\r\n")

    def handle(self) -> None:
        self.send(b"* OK IMAP4rev1 fake ready")
        while line := self.rfile.readline():
            tag, _, rest = line.decode().strip().partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "LOGOUT":
                self.send(b"* BYE logging out")
                self.send(f"{tag} OK LOGOUT completed".encode())
                return
            self.dispatch(tag, command, args)

    def dispatch(self, tag: str, command: str, args: str) -> None:
        box = self.server.mailbox
        if command == "CAPABILITY":
            self.send(b"* CAPABILITY IMAP4rev1")
        elif command == "LOGIN":
            user, password = [a.strip('"') for a in args.split(" ", 1)]
            if (user, password) != (self.server.user, self.server.password):
                self.send(f"{tag} NO [AUTHENTICATIONFAILED] invalid".encode())
                return
        elif command == "SELECT":
            self.send(f"* {len(box.messages)} EXISTS".encode())
            self.send(f"* OK [UIDVALIDITY {box.uid_validity}] UIDs valid".encode())
        elif command == "UID":
            self.uid(tag, args)
            return
        elif command != "NOOP":
            self.send(f"{tag} BAD unknown command".encode())
            return
        self.send(f"{tag} OK {command} completed".encode())

    def uid(self, tag: str, args: str) -> None:
        box = self.server.mailbox
        sub, _, rest = args.partition(" ")
        sub = sub.upper()
        uids = sorted(box.messages)
        if sub == "SEARCH":
            low = int(re.search(r"UID (\d+):\*", rest).group(1))  # type: ignore[union-attr]
            found = [u for u in uids if u >= low] or uids[-1:]
            self.send(("* SEARCH " + " ".join(map(str, found))).encode().rstrip())
        elif sub == "FETCH":
            uid = int(rest.split(" ")[0])
            box.fetches.append(uid)
            data = box.messages[uid]
            self.wfile.write(f"* {uids.index(uid) + 1} FETCH (UID {uid} BODY[] {{{len(data)}}}\r\n".encode()
                             + data + b")\r\n")
        elif sub == "STORE":
            uid = int(rest.split(" ")[0])
            box.seen.add(uid)
            self.send(f"* {uids.index(uid) + 1} FETCH (UID {uid} FLAGS (\\Seen))".encode())
        self.send(f"{tag} OK UID {sub} completed".encode())
