"""Screenshots of the Japanese UI for the README, against a server with demo data.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Starts `helpdesk serve --demo` on a free loopback port with a fresh SQLite database, drives
Debian's Chromium (HELPDESK_TEST_CHROMIUM, default /usr/bin/chromium) through Playwright, and
writes inbox.png, ticket.png, screen-pop.png and board.png. Live frames for the screen pop and
the presence indicator are handed to the page the way the socket client does.
"""

import argparse
import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Page, async_playwright

from helpdesk import normalize

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("HELPDESK_TEST_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
PASSWORD = "helpdesk-demo"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(db_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HELPDESK_DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
           "HELPDESK_HTMX_CDN_URL": "", "HELPDESK_INBOUND_TOKEN": "demo-inbound-token"}
    server = subprocess.Popen([str(ROOT / ".venv" / "bin" / "helpdesk"), "serve", "--demo",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL)
    for _ in range(600):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the demo server did not start")


def pick(db_path: Path) -> tuple[int, int, str]:
    """A ticket whose customer has several orders, that customer, and their phone number."""
    with sqlite3.connect(db_path) as db:
        row = db.execute(
            "SELECT t.id, c.id, i.value FROM ticket t JOIN customer c ON c.id = t.customer_id "
            "JOIN customer_identity i ON i.customer_id = c.id AND i.kind = 'phone' "
            "JOIN inbox b ON b.id = t.inbox_id AND b.name = 'default' "
            "JOIN user u ON u.id = t.assignee_id AND u.email = 'sato@example.com' "
            "WHERE c.orders_count >= 3 AND t.status = 'in_progress' ORDER BY c.orders_count DESC LIMIT 1"
        ).fetchone()
    return int(row[0]), int(row[1]), str(row[2])


async def sign_in(page: Page, base: str, email: str) -> None:
    await page.goto(f"{base}/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("form[action='/login'] button.primary")
    await page.wait_for_url("**/inbox")


async def deliver(page: Page, frame: dict[str, object]) -> None:
    await page.evaluate("f => document.dispatchEvent(new CustomEvent('helpdesk:event', {detail: f}))",
                        frame)


async def shoot(base: str, out: Path, ticket_id: int, customer_id: int, phone: str) -> None:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="ja-JP",
                                            timezone_id="Asia/Tokyo", device_scale_factor=1)
        page = await context.new_page()
        await sign_in(page, base, "sato@example.com")
        await page.goto(f"{base}/inbox?status=in_progress")
        await page.keyboard.press("j")
        await page.screenshot(path=out / "inbox.png")

        await page.goto(f"{base}/tickets/{ticket_id}")
        await page.fill("#reply-body", "お問い合わせありがとうございます。配送状況を確認いたします。")
        await page.click("#composer button[type=submit]")
        await page.wait_for_selector("#thread .msg-out")
        await deliver(page, {"type": "ticket.viewing",
                             "data": {"ticket_id": ticket_id, "user_id": 4, "name": "鈴木 健太"}})
        await page.wait_for_selector("#presence .presence-chip")
        await page.screenshot(path=out / "ticket.png")

        await page.goto(f"{base}/inbox")
        now = datetime.now(UTC).isoformat()
        # Shaped as the server sends it: the number also as people write it.
        display = normalize.phone_for_people(phone)
        await deliver(page, {"seq": 1, "type": "call.ringing", "at": now, "data": {"call": {
            "id": 1, "call_id": "demo-call", "provider": "cti", "direction": "in", "from": phone,
            "from_display": display, "to": "+81312345678", "state": "ringing",
            "customer_id": customer_id}, "caller": {"number": phone, "display": display,
                                                    "known": True, "customer_id": customer_id}}})
        await page.wait_for_selector(".pop-card .pop-order")
        await page.screenshot(path=out / "screen-pop.png")
        await context.close()

        context = await browser.new_context(viewport={"width": 1440, "height": 900}, locale="ja-JP",
                                            timezone_id="Asia/Tokyo")
        page = await context.new_page()
        await sign_in(page, base, "supervisor@example.com")
        await page.goto(f"{base}/board")
        await deliver(page, {"type": "presence.changed", "data": {"user_id": 3, "status": "online"}})
        await deliver(page, {"type": "presence.changed", "data": {"user_id": 4, "status": "away"}})
        await page.screenshot(path=out / "board.png")
        await browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db_path = Path(tmp) / "demo.db"
        port = free_port()
        server = start_server(db_path, port)
        try:
            ticket_id, customer_id, phone = pick(db_path)
            asyncio.run(shoot(f"http://127.0.0.1:{port}", args.out, ticket_id, customer_id, phone))
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"screenshots written to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
