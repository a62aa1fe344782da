"""Search through the inbox page at 100,000 to 1,000,000 tickets, short Japanese words included.

    nice -n 10 .venv/bin/python -m bench.search --tickets 1000000 --db /tmp/search-1m.db [--reuse]

Fills a SQLite file (or HELPDESK_BENCH_DATABASE_URL) with tickets written the way ingest writes
their search entries (a subject and one or two messages, Japanese and English, customers with
names), serves the app with ``helpdesk serve`` and asks ``GET /inbox?q=…`` as a supervisor, one
request at a time. Prints per query p50/p99, throughput, the server's CPU per request and its RSS
(the empty query first: the inbox page without a search, for reference). ``--path /api/tickets``
asks the JSON list instead (50 a page, every status); ``--checkout DIR`` serves another checkout
of the project on the same file, to compare two versions by alternating runs.
The fill writes the search entries, tickets and counters directly (no messages table rows):
search reads only those.
"""

import argparse
import asyncio
import os
import random
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, insert, select

from bench.stats import Server, rss_mib, summary
from helpdesk.auth import service as auth
from helpdesk.auth.dependencies import SESSION_COOKIE
from helpdesk.auth.models import Role, SessionKind, User
from helpdesk.customers.models import Customer
from helpdesk.db import create_engine, utcnow
from helpdesk.migrations import run_upgrade
from helpdesk.realtime.log import event_sessions
from helpdesk.search import service as search
from helpdesk.search.models import SearchEntry
from helpdesk.tickets import counts
from helpdesk.tickets.models import Ticket

SECRET = "bench-secret-key-that-is-long-enough-0123456789"
STATUSES = ["unhandled", "in_progress", "pending", "resolved", "no_action"]
BATCH = 5000

# Sentences with none of the searched words in them.
FILLER_JA = [
    "いつもお世話になっております。", "先日注文した商品について問い合わせます。",
    "よろしくお願いいたします。", "至急ご確認ください。", "色がイメージと違いました。",
    "サイズを交換できますか。", "注文番号は控えてあります。",
    "領収書の発行をお願いします。", "ポイントが反映されていません。", "クーポンが使えませんでした。",
    "会員登録の情報を変更したいです。", "支払い方法を変えたいです。", "請求金額が間違っているようです。",
    "電話がつながりませんでした。", "メールの返信をお待ちしています。", "在庫の入荷予定を教えてください。",
    "ギフト包装は可能でしょうか。", "キャンセルの手続きをお願いします。", "商品が破損していました。",
    "説明書が入っていませんでした。", "定期購入を停止したいです。", "ログインできません。",
]
FILLER_EN = [
    "Hello, I have a question about my order.", "Thanks for your help.", "Please get back to me soon.",
    "The colour is not what I expected.", "Can I change the size?", "My coupon did not work.",
    "I was charged twice for this purchase.", "The item arrived damaged.", "I cannot log in to my account.",
]
# Searched words and the share of tickets whose text carries them.
WORDS = [("返品したいです。", 0.10), ("配送状況を教えてください。", 0.15), ("住所を変更したいです。", 0.08),
         ("配送遅延のお詫びが届きました。", 0.02), ("外箱がつぶれていました。", 0.01),
         ("保証書が見当たりません。", 0.003), ("湯呑みの絵柄を選べますか。", 0.00005)]
WORDS_EN = [("I would like a refund.", 0.4)]
FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田"]
GIVEN = ["太郎", "花子", "一郎", "陽子", "健", "美咲", "大輔", "愛", "翔太", "さくら"]
QUERIES = ["", "refund", "配送遅延", "返品", "住所", "保証書", "湯呑み", "箱", "返品 住所", "zqxjw"]


def body(rng: random.Random) -> str:
    english = rng.random() < 0.1
    parts = rng.sample(FILLER_EN if english else FILLER_JA, 3)
    for word, share in WORDS_EN if english else WORDS:
        if rng.random() < share:
            parts.insert(rng.randrange(len(parts) + 1), word)
    return " ".join(parts) if english else "".join(parts)


def ticket_rows(n: int, customers: int, rng: random.Random) -> Iterator[tuple[dict, list[str]]]:
    start = utcnow() - timedelta(days=365)
    for i in range(n):
        created = start + timedelta(seconds=30 * i)
        # Most tickets were last touched soon after they came in, some much later.
        touched = created + timedelta(minutes=rng.choice([0, 5, 60]) if rng.random() < 0.9
                                      else rng.randrange(60 * 24 * 60))
        texts = [body(rng) for _ in range(rng.choice([1, 1, 2]))]
        subject = texts[0][:30]
        yield ({"number": 10_000 + i, "subject": subject, "status": STATUSES[i % 5],
                "priority": "normal", "channel": "email", "inbox_id": 1,
                "customer_id": rng.randrange(1, customers + 1), "token": secrets.token_hex(8),
                "version": 1, "created_at": created, "updated_at": touched}, [subject, *texts])


async def fill(url: str, n: int) -> None:
    rng = random.Random(25)
    engine = create_engine(url)
    entry = SearchEntry.__table__  # type: ignore[attr-defined]
    n_customers = max(1, n // 5)
    async with event_sessions(engine)() as session:
        await auth.create_user(session, email="boss@example.com", name="boss",
                               role=Role.supervisor, password="bench-password")
        names = [f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}" for _ in range(n_customers)]
        for start in range(0, n_customers, BATCH):
            chunk = names[start:start + BATCH]
            await session.execute(insert(Customer.__table__),  # type: ignore[attr-defined]
                                  [{"name": name, "tags": [], "orders_count": 0, "total_spent": 0,
                                    "created_at": utcnow(), "updated_at": utcnow()} for name in chunk])
            await session.execute(insert(entry), [
                {"kind": "customer", "ref_id": start + k + 1, "customer_id": start + k + 1,
                 "ticket_id": None, "text": search.fold(name)} for k, name in enumerate(chunk)])
        await session.commit()
        rows = ticket_rows(n, n_customers, rng)
        done = 0
        while done < n:
            batch = [next(rows) for _ in range(min(BATCH, n - done))]
            await session.execute(insert(Ticket.__table__), [t for t, _ in batch])  # type: ignore[attr-defined]
            entries = []
            for k, (ticket, texts) in enumerate(batch):
                ticket_id = done + k + 1
                entries += [{"kind": "subject" if j == 0 else "message", "ref_id": ticket_id,
                             "ticket_id": ticket_id, "customer_id": ticket["customer_id"],
                             "text": search.fold(t)} for j, t in enumerate(texts)]
            await session.execute(insert(entry), entries)
            await session.commit()
            done += len(batch)
            if done % 100_000 == 0:
                print(f"  {done} tickets", flush=True)
        await counts.recount(session)
        await session.commit()
    await engine.dispose()


async def sign_in(url: str) -> tuple[str, int]:
    engine = create_engine(url)
    async with event_sessions(engine)() as session:
        user = await session.scalar(select(User).where(User.email == "boss@example.com"))
        assert user is not None
        token = await auth.sign_in(session, secret_key=SECRET, user=user, kind=SessionKind.browser,
                                   ttl_seconds=86400)
        await session.commit()
        tickets = await session.scalar(select(func.count()).select_from(Ticket))
    await engine.dispose()
    return token, int(tickets or 0)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(server: Server, token: str, q: str, n: int, path: str = "/inbox"
            ) -> tuple[list[float], float, float]:
    assert server.process is not None
    timings = []
    with httpx.Client(base_url=server.url, cookies={SESSION_COOKIE: token}, timeout=60) as client:
        for _ in range(3):  # warm the page cache for this query
            client.get(path, params={"q": q})
        cpu0, wall0 = cpu_seconds(server.process.pid), time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            response = client.get(path, params={"q": q})
            timings.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.status_code
        wall = time.perf_counter() - wall0
        cpu = cpu_seconds(server.process.pid) - cpu0
    return timings, wall, cpu / n


async def write_cost(url: str, n: int) -> float:
    """CPU seconds of this process per search entry written one transaction each, as ingest does."""
    rng = random.Random(7)
    texts = [search.fold(body(rng)) for _ in range(n)]
    engine = create_engine(url)
    entry = SearchEntry.__table__  # type: ignore[attr-defined]
    async with event_sessions(engine)() as session:
        for warm in texts[:50]:
            await session.execute(insert(entry).values(kind="message", ref_id=0, ticket_id=1, text=warm))
        await session.commit()
        t0 = time.process_time()
        for folded in texts:
            await session.execute(insert(entry).values(kind="message", ref_id=0, ticket_id=1, text=folded))
            await session.commit()
        spent = time.process_time() - t0
    await engine.dispose()
    return spent / n


def compare_write_cost(n: int) -> None:
    """The trigram index (migration 0024) against the character pairs (head), fresh SQLite files."""
    for revision in ("0024", "head"):
        path = Path(f"/tmp/search-write-{revision}.db")
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite+aiosqlite:///{path}"
        run_upgrade(url, revision)
        cost = asyncio.run(write_cost(url, n))
        print(f"search entry written alone, schema {revision}: {cost * 1e6:.0f} µs CPU each ({n} entries)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--db", default="/tmp/search-bench.db", help="SQLite file (kept for --reuse)")
    parser.add_argument("--reuse", action="store_true", help="keep the tickets already there")
    parser.add_argument("--query", action="append", help="only these queries (repeatable)")
    parser.add_argument("--path", default="/inbox", choices=["/inbox", "/api/tickets"],
                        help="the page (default) or the JSON list")
    parser.add_argument("--checkout", help="serve the project from this directory instead")
    parser.add_argument("--write-cost", type=int, metavar="N",
                        help="only compare the CPU of writing N entries under both indexes (SQLite)")
    args = parser.parse_args()
    if args.write_cost:
        compare_write_cost(args.write_cost)
        return
    url = os.environ.get("HELPDESK_BENCH_DATABASE_URL") or f"sqlite+aiosqlite:///{args.db}"
    if not args.reuse and url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(args.db + suffix).unlink(missing_ok=True)
    run_upgrade(url)
    if not args.reuse:
        t0 = time.perf_counter()
        asyncio.run(fill(url, args.tickets))
        print(f"filled {args.tickets} tickets in {time.perf_counter() - t0:.0f} s")
    token, tickets = asyncio.run(sign_in(url))
    env = {"HELPDESK_DATABASE_URL": url, "HELPDESK_SECRET_KEY": SECRET, "HELPDESK_RUN_WORKERS": "false",
           "HELPDESK_HTMX_CDN_URL": ""}
    served = f" from {args.checkout}" if args.checkout else ""
    print(f"{tickets} tickets, {url.split(':')[0]}, GET {args.path}?q=… one request at a time{served}")
    with Server(env, cwd=args.checkout) as server:
        assert server.process is not None
        for q in args.query or QUERIES:
            timings, wall, cpu = measure(server, token, q, args.requests, args.path)
            print(f"{summary(f'q={q!r}', timings, wall)} server_cpu={cpu * 1000:.2f}ms/req", flush=True)
        print(f"server RSS {rss_mib(server.process.pid):.0f} MiB")


if __name__ == "__main__":
    main()
