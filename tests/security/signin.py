"""Helpers for the sign-in tests: clients from other loopback addresses, the login form."""

import re

import httpx

from tests.support.staff import PASSWORD


def client_from(base_url: str, address: str) -> httpx.AsyncClient:
    """A real HTTP client whose connections come from ``address`` (any of 127.0.0.0/8)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=base_url, transport=transport, timeout=30)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def form_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD,
                     **fields: str) -> httpx.Response:
    """Sign in through the login form as a browser would (its CSRF token included)."""
    page = await client.get("/login")
    return await client.post("/login", data={"email": email, "password": password,
                                             "csrf_token": csrf_of(page.text), **fields})


async def token_login(client: httpx.AsyncClient, email: str, password: str = PASSWORD,
                      **extra: str) -> httpx.Response:
    return await client.post("/api/auth/token", json={"email": email, "password": password, **extra})

