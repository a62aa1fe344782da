"""Findings 6 and 7: ``next=`` stays on this site, and the CSRF token belongs to one session
and is asked of every request the session cookie authenticates, whatever else it carries."""

import re

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role
from helpdesk.auth.views import safe_next
from helpdesk.tickets.models import Message, Ticket
from tests.security.signin import csrf_of, form_login
from tests.support.database import Peek
from tests.support.inbound import inbound
from tests.support.staff import Staff

HOSTILE = ["/\t/evil.example", "/%09/evil.example", "//evil.example", "/\\evil.example",
           "/\\/evil.example", "\\\\evil.example", "https://evil.example/", "https:evil.example",
           "/\n/evil.example", "/x\r\nSet-Cookie: a=b", " /inbox", "/\x00x", "/ok\u3000/x",
           "javascript:alert(1)", "", "inbox"]


@pytest.fixture
def peek(engine: AsyncEngine) -> Peek:
    """Reads what the server committed."""
    return Peek(engine)


@pytest.mark.parametrize("target", HOSTILE)
def test_only_plain_same_origin_paths_pass(target: str) -> None:
    assert safe_next(target) == "/inbox"


def test_local_paths_pass_unchanged() -> None:
    for target in ("/customers/12", "/inbox?status=pending&view=mine", "/tickets/5#m-3", "/"):
        assert safe_next(target) == target


async def test_hostile_next_goes_to_the_inbox_and_never_fails(
        http: httpx.AsyncClient, staff: Staff) -> None:
    await staff.create("sato", Role.operator)
    raw_queries = ["next=/%09/evil.example", "next=%2F%0A%2Fevil.example", "next=%2F%0D%0AX:%201",
                   "next=/%5Cevil.example", "next=//evil.example"]
    for query in raw_queries:
        page = await http.get(f"/login?{query}")
        assert page.status_code == 200, query
        assert 'name="next" value="/inbox"' in page.text, query
    for target in HOSTILE:
        response = await form_login(http, "sato@example.com", next=target)
        if "\x00" in target:  # the input boundary refuses NUL anywhere, before sign-in
            assert response.status_code == 422, (target, response.text[:200])
            continue
        assert response.status_code == 303, (target, response.text[:200])
        assert response.headers["location"] == "/inbox", target
        http.cookies.clear()


async def _signed_in_page(client: httpx.AsyncClient, cookie: str, path: str = "/inbox") -> str:
    client.cookies.set(SESSION_COOKIE, cookie)
    page = await client.get(path)
    found = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert found
    return found.group(1)


async def test_an_authorization_header_does_not_excuse_a_cookie_request(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    result = await inbound(db, "c1")
    await _signed_in_page(http, Staff.cookie(sato))
    version = (await peek.get(Ticket, result.ticket_id)).version
    for authorization in ("Basic c2F0bzpwdw==", "Bearer not-a-token", "Bearer", "x"):
        response = await http.post(f"/tickets/{result.ticket_id}/reply",
                                   data={"body": "偽の返信", "composer_version": str(version)},
                                   headers={"Authorization": authorization})
        assert response.status_code == 403, authorization
        patched = await http.patch(f"/api/tickets/{result.ticket_id}",
                                   json={"version": version, "status": "resolved"},
                                   headers={"Authorization": authorization})
        assert patched.status_code == 403, authorization
    assert await peek.scalar(select(func.count()).select_from(Message)) == 1
    assert (await peek.get(Ticket, result.ticket_id)).status == "unhandled"


async def test_the_token_of_one_session_is_refused_in_another(
        http: httpx.AsyncClient, staff: Staff, db: AsyncSession, peek: Peek) -> None:
    sato = await staff.create("sato", Role.operator, inboxes=["default"])
    other = await staff.create("other", Role.operator, inboxes=["default"])
    result = await inbound(db, "c2")
    version = (await peek.get(Ticket, result.ticket_id)).version
    # One browser (one CSRF cookie): a token read under sato's session, sent under other's.
    sato_token = await _signed_in_page(http, Staff.cookie(sato))
    other_token = await _signed_in_page(http, Staff.cookie(other))
    assert sato_token != other_token
    change = {"version": version, "priority": "high"}
    stale = await http.patch(f"/api/tickets/{result.ticket_id}", json=change,
                             headers={"X-CSRF-Token": sato_token})
    assert stale.status_code == 403
    fresh = await http.patch(f"/api/tickets/{result.ticket_id}", json=change,
                             headers={"X-CSRF-Token": other_token})
    assert fresh.status_code == 200


async def test_the_sign_in_form_token_is_not_a_session_token(
        http: httpx.AsyncClient, staff: Staff) -> None:
    await staff.create("sato", Role.operator)
    before = csrf_of((await http.get("/login")).text)
    await form_login(http, "sato@example.com")
    page = await http.get("/me")
    refused = await http.post("/me", data={"language": "en", "timezone": "Asia/Tokyo",
                                           "csrf_token": before})
    assert refused.status_code == 403
    accepted = await http.post("/me", data={"language": "en", "timezone": "Asia/Tokyo",
                                            "csrf_token": csrf_of(page.text)})
    assert accepted.status_code == 303
