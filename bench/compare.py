"""Side by side: one HTTP client drives the same scenarios against this project and django-helpdesk.

    .venv/bin/python -m bench.compare \\
        --ours http://127.0.0.1:8000 --ours-pid PID --ours-email sup@example.com \\
        --ours-password bench-pass --inbound-token bench-inbound \\
        [--djh http://127.0.0.1:8031 --djh-pid PID --djh-user admin --djh-password bench-pass]

    .venv/bin/python -m bench.compare fill --db /tmp/compare-ours.db --tickets 100000

Each round runs every scenario against one system, then against the other (the order alternates
from round to round); the table gives the median of the rounds. Scenarios: ticket creation at 8
and 32 clients (ours: ``POST /api/inbound``, a new customer each; django-helpdesk: its REST API,
``POST /api/tickets/``), the server's CPU per created ticket (when its PID is given; the PID's
whole process tree is counted), raw Japanese mails through our email webhook (django-helpdesk has
no HTTP entry point for mail), then one client at a time: the ticket list, searches, and the
supervisor board (django-helpdesk: its dashboard). The servers are started by the reader; only
our side is required. ``fill`` builds our side's database (SQLite) with the same subjects and
bodies as ``ticket_text`` gives the other side's fill.
"""

import argparse
import asyncio
import os
import random
import re
import secrets
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import httpx

from bench.stats import percentile

READS = ("ticket list", "search 返品", "search refund", "supervisor board")
WORDS_JA = ["注文", "配送", "返品", "交換", "湯呑み", "割れて", "領収書", "ギフト", "定期便", "解約"]
WORDS_EN = ["refund", "delivery", "address", "invoice", "exchange", "order", "gift", "cancel"]
Metrics = dict[str, float]
IN_SECONDS = ("p50", "p99", "cpu per create")  # metrics kept in seconds, shown in ms


def ticket_text(i: int) -> tuple[str, str]:
    """The subject and body of the i-th filled ticket, the same on both sides (one in four English)."""
    rng = random.Random(i)
    if i % 4 == 0:
        return (f"{rng.choice(WORDS_EN)} request #{i}",
                f"Hello, about my {rng.choice(WORDS_EN)}: {rng.choice(WORDS_EN)} please. #{i}")
    return (f"{rng.choice(WORDS_JA)}について #{i}",
            f"{rng.choice(WORDS_JA)}の件で {rng.choice(WORDS_JA)}をお願いします。#{i}")


class System:
    """How one helpdesk is driven: signing in, creating a ticket, and the read scenarios."""

    label = ""
    offers_mail = False

    def __init__(self, url: str, pid: int | None) -> None:
        self.url = url.rstrip("/")
        self.pid = pid

    async def sign_in(self, client: httpx.AsyncClient) -> None:
        raise NotImplementedError

    async def create(self, client: httpx.AsyncClient, key: str, i: int) -> None:
        raise NotImplementedError

    async def mail(self, client: httpx.AsyncClient, key: str, i: int) -> None:
        raise NotImplementedError

    async def read(self, client: httpx.AsyncClient, scenario: str) -> None:
        raise NotImplementedError


def expect(response: httpx.Response, *codes: int) -> None:
    """Stop the run on an unexpected answer, with what the server said."""
    if response.status_code not in codes:
        raise RuntimeError(f"{response.request.method} {response.request.url}: "
                           f"{response.status_code} {response.text[:300]}")


class Ours(System):
    """This project: bearer token for pages, the inbound token for the API channel and mail."""

    label = "this project"
    offers_mail = True

    def __init__(self, url: str, pid: int | None, email: str, password: str, inbound: str) -> None:
        super().__init__(url, pid)
        self.email, self.password = email, password
        self.inbound = {"Authorization": f"Bearer {inbound}"}
        self.staff: dict[str, str] = {}

    async def sign_in(self, client: httpx.AsyncClient) -> None:
        answer = await client.post("/api/auth/token", json={"email": self.email, "password": self.password})
        expect(answer, 200)
        self.staff = {"Authorization": f"Bearer {answer.json()['access_token']}"}

    async def create(self, client: httpx.AsyncClient, key: str, i: int) -> None:
        subject, body = ticket_text(i)
        expect(await client.post("/api/inbound", headers={**self.inbound, "Idempotency-Key": key}, json={
            "channel": "api", "external_id": key, "subject": subject, "body": body,
            "from": {"name": f"顧客 {key}", "email": f"{key}@example.jp"}}), 201)

    async def mail(self, client: httpx.AsyncClient, key: str, i: int) -> None:
        expect(await client.post("/webhooks/email", content=japanese_mail(key, i), headers={
            **self.inbound, "Content-Type": "message/rfc822"}), 201)

    async def read(self, client: httpx.AsyncClient, scenario: str) -> None:
        path = {"ticket list": "/inbox", "search 返品": "/inbox?q=返品",
                "search refund": "/inbox?q=refund", "supervisor board": "/board"}[scenario]
        expect(await client.get(path, headers=self.staff), 200)


class DjangoHelpdesk(System):
    """django-helpdesk: a browser-like session (login form, CSRF cookie) for the API and pages."""

    label = "django-helpdesk"

    def __init__(self, url: str, pid: int | None, user: str, password: str, queue: int) -> None:
        super().__init__(url, pid)
        self.user, self.password, self.queue = user, password, queue
        self.csrf: dict[str, str] = {}

    async def sign_in(self, client: httpx.AsyncClient) -> None:
        expect(await client.get("/login/"), 200)
        token = client.cookies["csrftoken"]
        answer = await client.post("/login/", data={
            "username": self.user, "password": self.password, "csrfmiddlewaretoken": token,
            "next": "/dashboard/"}, headers={"Referer": f"{self.url}/login/"})
        expect(answer, 302)
        if "sessionid" not in client.cookies:
            raise RuntimeError("django-helpdesk refused the sign-in")
        self.csrf = {"X-CSRFToken": client.cookies["csrftoken"]}

    async def create(self, client: httpx.AsyncClient, key: str, i: int) -> None:
        subject, body = ticket_text(i)
        expect(await client.post("/api/tickets/", headers=self.csrf, json={
            "queue": self.queue, "title": subject, "description": body, "priority": 3,
            "submitter_email": f"{key}@example.jp"}), 201)

    async def read(self, client: httpx.AsyncClient, scenario: str) -> None:
        if scenario == "supervisor board":
            expect(await client.get("/dashboard/"), 200)
            return
        # The list page is a shell; the browser then asks for the rows, 50 of them as ours shows.
        params = {"q": scenario.removeprefix("search ")} if scenario.startswith("search") else {}
        page = await client.get("/tickets/", params=params)
        expect(page, 200)
        found = re.search(r"datatables_ticket_list/([A-Za-z0-9+/=]+)", page.text)
        if found is None:
            raise RuntimeError("django-helpdesk's list page names no rows query")
        expect(await client.get(f"/datatables_ticket_list/{found.group(1)}",
                                params={"draw": 1, "start": 0, "length": 50}), 200)


def japanese_mail(key: str, i: int) -> bytes:
    """One raw RFC 822 mail in Japanese from a new sender."""
    subject, body = ticket_text(i)
    message = EmailMessage()
    message["From"] = f"顧客 {i} <{key}@example.jp>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(idstring=key, domain="example.jp")
    message.set_content(f"{body}\n\nよろしくお願いいたします。\n", charset="utf-8")
    return message.as_bytes()


def tree_pids(root: int) -> list[int]:
    """``root`` and every process below it (gunicorn's or uvicorn's workers)."""
    parents: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(fields[1])].append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def tree_cpu(root: int) -> float:
    """CPU seconds (user + system) spent so far by the live processes of ``root``'s tree."""
    total = 0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def tree_rss(root: int) -> float:
    """Resident memory of ``root``'s process tree, in MiB."""
    total = 0
    for pid in tree_pids(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next((int(line.split()[1]) for line in status.splitlines()
                       if line.startswith("VmRSS:")), 0)
    return total / 1024


async def load(call: Callable[[str, int], Awaitable[None]], prefix: str, count: int,
               clients: int) -> tuple[list[float], float]:
    """``count`` calls from ``clients`` concurrent clients: latencies and wall time."""
    todo = iter(range(count))
    latencies: list[float] = []

    async def client() -> None:
        for i in todo:
            started = time.perf_counter()
            await call(f"{prefix}-{i}", i)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, time.perf_counter() - started


async def one_round(system: System, args: argparse.Namespace, run: str) -> Metrics:
    """Every scenario once against ``system``; the figures by metric name."""
    out: Metrics = {}
    limits = httpx.Limits(max_connections=max(args.clients) + 4)
    async with httpx.AsyncClient(base_url=system.url, timeout=args.timeout, limits=limits) as client:
        await system.sign_in(client)
        cpu_before = tree_cpu(system.pid) if system.pid else 0.0
        created = 0
        for clients in args.clients:
            latencies, wall = await load(lambda key, i: system.create(client, key, i),
                                         f"{run}-c{clients}", args.creates, clients)
            out[f"create {clients}/s"] = len(latencies) / wall
            out[f"create {clients} p99"] = percentile(latencies, 99)
            created += len(latencies)
        if system.pid:
            out["cpu per create"] = (tree_cpu(system.pid) - cpu_before) / created
        if system.offers_mail and args.mails:
            latencies, wall = await load(lambda key, i: system.mail(client, key, i),
                                         f"{run}-mail", args.mails, args.mail_clients)
            out["mail/s"] = len(latencies) / wall
            out["mail p99"] = percentile(latencies, 99)
        for scenario in READS:
            for _ in range(args.warmup):
                await system.read(client, scenario)
            samples = []
            for _ in range(args.reads):
                started = time.perf_counter()
                await system.read(client, scenario)
                samples.append(time.perf_counter() - started)
            out[f"{scenario} p50"] = percentile(samples, 50)
            out[f"{scenario} p99"] = percentile(samples, 99)
    if system.pid:
        out["rss"] = tree_rss(system.pid)
    return out


def rows(args: argparse.Namespace) -> list[tuple[str, str, str, bool]]:
    """Table rows: label, metric, unit, and whether more is better."""
    table = []
    for clients in args.clients:
        table.append((f"create, {clients} clients", f"create {clients}/s", "/s", True))
        table.append((f"create, {clients} clients, p99", f"create {clients} p99", "ms", False))
    table.append(("server CPU per created ticket", "cpu per create", "ms", False))
    mails = f"email ingest, {args.mails} Japanese mails, {args.mail_clients} clients"
    table.append((mails, "mail/s", "/s", True))
    table.append((f"{mails}, p99", "mail p99", "ms", False))
    for scenario in READS:
        table.append((f"{scenario}, p50", f"{scenario} p50", "ms", False))
        table.append((f"{scenario}, p99", f"{scenario} p99", "ms", False))
    table.append(("server RSS after the round", "rss", "MiB", False))
    return table


def cell(values: list[float], unit: str) -> str:
    if not values:
        return "—"
    value = statistics.median(values) * (1000 if unit == "ms" else 1)
    return f"{value:,.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def table(systems: list[System], results: dict[str, list[Metrics]], args: argparse.Namespace) -> str:
    """Medians over the rounds, as a Markdown table; ratio > 1 means this project is ahead."""
    theirs = next((s for s in systems if not isinstance(s, Ours)), None)
    lines = ["| scenario | django-helpdesk | this project | ratio |", "|---|---|---|---|"]
    for label, metric, unit, more_is_better in rows(args):
        mine = [r[metric] for r in results["this project"] if metric in r]
        other = [r[metric] for r in results.get(theirs.label, []) if metric in r] if theirs else []
        ratio = ""
        if mine and other and statistics.median(mine) and statistics.median(other):
            a, b = statistics.median(mine), statistics.median(other)
            ratio = f"{(a / b if more_is_better else b / a):.2f}×"
        lines.append(f"| {label} | {cell(other, unit)} | {cell(mine, unit)} | {ratio} |")
    return "\n".join(lines)


def compare(args: argparse.Namespace) -> None:
    systems: list[System] = [Ours(args.ours, args.ours_pid, args.ours_email, args.ours_password,
                                  args.inbound_token)]
    if args.djh:
        systems.append(DjangoHelpdesk(args.djh, args.djh_pid, args.djh_user, args.djh_password,
                                      args.djh_queue))
    results: dict[str, list[Metrics]] = defaultdict(list)
    run = args.run_id or secrets.token_hex(4)
    for number in range(args.rounds):
        order = systems if number % 2 == 0 else systems[::-1]
        for system in order:
            figures = asyncio.run(one_round(system, args, f"{run}-r{number}-{system.label[:4]}"))
            results[system.label].append(figures)
            shown = ", ".join(f"{k}={v * 1000 if k.endswith(IN_SECONDS) else v:.1f}"
                              for k, v in figures.items())
            load_1m = os.getloadavg()[0]
            print(f"round {number + 1}, {system.label} (load {load_1m:.1f}): {shown}", flush=True)
    print(f"\nmedians of {args.rounds} round(s); creates {args.creates} per level, reads {args.reads} "
          f"per scenario, one client at a time; {os.cpu_count()} cores, load average "
          f"{' / '.join(f'{v:.1f}' for v in os.getloadavg())} at the end\n")
    print(table(systems, results, args))


def fill_ours(db: Path, count: int) -> None:
    """``count`` tickets with customers, messages, search rows and counters, into a new database."""
    # Imported here: the client side runs without the app's packages loaded.
    from sqlalchemy import create_engine, text

    from helpdesk.auth.service import hash_password
    from helpdesk.migrations import run_upgrade

    run_upgrade(f"sqlite+aiosqlite:///{db}")
    engine = create_engine(f"sqlite:///{db}")
    statuses = ["unhandled", "in_progress", "pending", "resolved", "no_action"]
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO user (email, name, role, language, timezone, password_hash, is_active,"
            " failed_logins, created_at) VALUES ('sup@example.com', 'sup', 'supervisor', 'ja',"
            " 'Asia/Tokyo', :hash, 1, 0, CURRENT_TIMESTAMP)"), {"hash": hash_password("bench-pass")})
        for start in range(0, count, 10_000):
            batch = []
            for i in range(start, min(count, start + 10_000)):
                subject, body = ticket_text(i)
                at = f"2026-{1 + i * 11 // count:02d}-{1 + i % 28:02d} {i % 24:02d}:00:00.{i % 1000000:06d}"
                batch.append({"i": i, "n": 100_000 + i, "status": statuses[i % 5], "at": at,
                              "subject": subject, "body": body})
            conn.execute(text(
                "INSERT INTO customer (id, name, tags, orders_count, total_spent, created_at, updated_at)"
                " VALUES (:i + 1, 'bench', '[]', 0, 0, :at, :at)"), batch)
            conn.execute(text(
                "INSERT INTO ticket (id, number, subject, status, priority, channel, inbox_id, customer_id,"
                " token, version, created_at, updated_at, last_message_at) VALUES (:i + 1, :n, :subject,"
                " :status, 'normal', 'email', 1, :i + 1, 'fill' || :i, 1, :at, :at, :at)"), batch)
            conn.execute(text(
                "INSERT INTO message (ticket_id, direction, internal, channel, body_text, auto_reply,"
                " created_at) VALUES (:i + 1, 'in', 0, 'email', :body, 0, :at)"), batch)
            conn.execute(text("INSERT INTO search_entry (kind, ref_id, ticket_id, customer_id, text)"
                              " VALUES ('message', :i + 1, :i + 1, :i + 1, :subject || ' ' || :body)"), batch)
        # The counters' key as helpdesk.tickets.counts.recount writes it (no assignee here).
        conn.execute(text("INSERT INTO ticket_count (inbox_id, assignee_id, status, channel, shard, n)"
                          " SELECT inbox_id, 0, status, channel, 0, COUNT(*) FROM ticket"
                          " GROUP BY inbox_id, status, channel"))
    engine.dispose()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    if argv[:1] == ["fill"]:
        parser.add_argument("command")
        parser.add_argument("--db", type=Path, required=True)
        parser.add_argument("--tickets", type=int, default=100_000)
        return parser.parse_args(argv)
    add = parser.add_argument
    add("--ours", required=True, help="this project's base URL")
    add("--ours-pid", type=int, help="the PID of our server (its process tree is measured)")
    add("--ours-email", default="sup@example.com")
    add("--ours-password", default="bench-pass")
    add("--inbound-token", default="bench-inbound")
    add("--djh", help="django-helpdesk's base URL; left out, our side runs alone")
    add("--djh-pid", type=int, help="the PID of gunicorn's master process")
    add("--djh-user", default="admin")
    add("--djh-password", default="bench-pass")
    add("--djh-queue", type=int, default=1, help="the queue id new tickets go to")
    add("--rounds", type=int, default=3)
    add("--clients", type=lambda v: [int(c) for c in v.split(",")], default=[8, 32])
    add("--creates", type=int, default=400, help="tickets created at each client count")
    add("--mails", type=int, default=1000)
    add("--mail-clients", type=int, default=8)
    add("--reads", type=int, default=40, help="requests per read scenario")
    add("--warmup", type=int, default=2)
    add("--timeout", type=float, default=120)
    add("--run-id", help="prefix of idempotency keys and addresses (default: random)")
    args = parser.parse_args(argv)
    args.command = "compare"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "fill":
        started = time.perf_counter()
        fill_ours(args.db, args.tickets)
        print(f"filled {args.tickets} tickets into {args.db} in {time.perf_counter() - started:.0f}s")
    else:
        compare(args)


if __name__ == "__main__":
    main()
