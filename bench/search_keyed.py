"""What an index keyed by ticket activity would cost: a prototype in plain SQLite, apart from the app.

    .venv/bin/python -m bench.search_keyed --tickets 1000000 --db /tmp/search-keyed.db [--reuse]

The app's index (``search_gram``) holds one document per search entry, numbered in the order the
entries were written, while a page of results follows each ticket's last activity: so every
plan either orders all the index's matches or walks tickets newest first checking each one
(docs/performance.md, "Search at 100,000 and 1,000,000 tickets"). The design measured here would
stop after a page: one FTS5 document per ticket (the pairs of its subject, its messages and its
customer's entry) whose rowid is a key that grows whenever the ticket has activity. A page is
then the first matches in descending rowid order, joined to their tickets for the filters; any
activity on a ticket rewrites its document under a new key ('delete' of its pairs, insert again).

Both designs are filled from the same texts as ``bench.search`` (tickets' activity spread the
same way), and queried in plain SQL, without SQLAlchemy, HTTP or a template:

- entries: the app's two plans on ``search_gram`` (the index's tickets ordered; the walk over
  tickets newest first), each timed, the cheaper reported, as the app's plan chooser would pick;
- keyed: the page straight off ``search_ticket``.

Each query is timed without a filter and with one status (a fifth of the tickets), and the pages
of both designs are checked to hold the same tickets. Last, the CPU of a ticket's activity in its
own transaction (its row updated), with and without re-keying its document.
"""

import argparse
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.search import FAMILY, GIVEN, QUERIES, STATUSES, body
from bench.stats import percentile
from helpdesk.search import models as grams
from helpdesk.search import service as search

PAGE = 51  # a page of 50 and one more, to know there is a next page
BATCH = 5000
Ticket = tuple[int, str, int, float, list[str]]  # id, status, customer id, activity, texts


def open_db(path: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.create_function(grams.SQLITE_FUNCTION, 1, grams.sqlite_document, deterministic=True)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA cache_size=-65536")
    return db


def tickets(n: int, rng: random.Random) -> Iterator[Ticket]:
    """As ``bench.search`` fills them: most touched soon after they came, some much later."""
    customers = max(1, n // 5)
    for i in range(n):
        created = 30.0 * i
        touched = created + (60 * rng.choice([0, 5, 60]) if rng.random() < 0.9
                             else 60 * rng.randrange(60 * 24 * 60))
        texts = [body(rng) for _ in range(rng.choice([1, 1, 2]))]
        yield i + 1, STATUSES[i % 5], rng.randrange(1, customers + 1), touched, [texts[0][:30], *texts]


def fill(db: sqlite3.Connection, n: int) -> None:
    db.executescript("""
        CREATE TABLE customer (id INTEGER PRIMARY KEY, folded TEXT NOT NULL);
        CREATE TABLE ticket (id INTEGER PRIMARY KEY, status TEXT NOT NULL, customer_id INTEGER,
                             updated_at REAL NOT NULL, search_key INTEGER NOT NULL);
        CREATE INDEX ix_ticket_updated ON ticket (updated_at, id);
        CREATE INDEX ix_ticket_customer ON ticket (customer_id);
        CREATE UNIQUE INDEX ix_ticket_search_key ON ticket (search_key);
        CREATE TABLE search_entry (id INTEGER PRIMARY KEY, ticket_id INTEGER, customer_id INTEGER,
                                   text TEXT NOT NULL);
        CREATE INDEX ix_entry_ticket ON search_entry (ticket_id);
        CREATE INDEX ix_entry_customer_only ON search_entry (customer_id) WHERE ticket_id IS NULL;
        CREATE VIRTUAL TABLE search_gram USING fts5(grams, content='', columnsize=0, tokenize='ascii');
        CREATE VIRTUAL TABLE search_ticket USING fts5(grams, content='', columnsize=0, tokenize='ascii');
    """)
    rng = random.Random(25)
    n_customers = max(1, n // 5)
    names = [search.fold(f"{rng.choice(FAMILY)} {rng.choice(GIVEN)}") for _ in range(n_customers)]
    db.execute("BEGIN")
    db.executemany("INSERT INTO customer VALUES (?, ?)", enumerate(names, 1))
    db.executemany("INSERT INTO search_entry (customer_id, text) VALUES (?, ?)", enumerate(names, 1))
    db.execute("INSERT INTO search_gram (rowid, grams) "
               "SELECT id, helpdesk_grams(text) FROM search_entry")
    db.execute("COMMIT")
    rows = list(tickets(n, rng))
    # The key: each ticket's rank by last activity (what re-keying on every activity keeps true).
    keys = {ticket_id: rank for rank, (ticket_id, *_rest) in
            enumerate(sorted(rows, key=lambda row: (row[3], row[0])), 1)}
    for start in range(0, n, BATCH):
        chunk = rows[start:start + BATCH]
        db.execute("BEGIN")
        db.executemany("INSERT INTO ticket VALUES (?, ?, ?, ?, ?)",
                       [(i, status, customer, at, keys[i]) for i, status, customer, at, _ in chunk])
        first = db.execute("SELECT coalesce(max(id), 0) + 1 FROM search_entry").fetchone()[0]
        entries = [(i, customer, search.fold(text)) for i, _, customer, _, texts in chunk for text in texts]
        db.executemany("INSERT INTO search_entry (ticket_id, customer_id, text) VALUES (?, ?, ?)", entries)
        db.execute("INSERT INTO search_gram (rowid, grams) SELECT id, helpdesk_grams(text) "
                   "FROM search_entry WHERE id >= ?", (first,))
        db.executemany("INSERT INTO search_ticket (rowid, grams) VALUES (?, ?)",
                       [(keys[i], document(texts, names[customer - 1]))
                        for i, _, customer, _, texts in chunk])
        db.execute("COMMIT")
        if (start + BATCH) % 100_000 == 0:
            print(f"  {start + BATCH} tickets", flush=True)


def document(texts: list[str], customer: str) -> str:
    return " ".join(grams.sqlite_document(search.fold(text)) for text in [*texts, customer])


def fts_query(q: str) -> str:
    """Every word of ``q`` (AND), each in any of its spellings (OR), as the app asks FTS5."""
    return " AND ".join("(" + " OR ".join(grams.sqlite_query(form) for form in term.forms) + ")"
                        for term in search.terms(q))


def keyed_page(db: sqlite3.Connection, q: str, status: str | None) -> list[int]:
    status_clause = "AND ticket.status = ?" if status else ""
    return [row[0] for row in db.execute(
        "SELECT ticket.id FROM search_ticket JOIN ticket ON ticket.search_key = search_ticket.rowid "
        f"WHERE search_ticket MATCH ? {status_clause} ORDER BY search_ticket.rowid DESC LIMIT ?",
        (fts_query(q), *([status] if status else []), PAGE))]


def _matches(q: str) -> tuple[str, list[str]]:
    """The walk's per-ticket check: every word in one of the ticket's or its customer's entries."""
    clauses, params = [], []
    for term in search.terms(q):
        found = " OR ".join(["instr(e.text, ?) > 0"] * len(term.forms))
        clauses.append(f"(EXISTS (SELECT 1 FROM search_entry e WHERE e.ticket_id = ticket.id AND ({found})) "
                       f"OR EXISTS (SELECT 1 FROM search_entry e WHERE e.customer_id = ticket.customer_id "
                       f"AND e.ticket_id IS NULL AND ({found})))")
        params += [*term.forms, *term.forms]
    return " AND ".join(clauses), params


def walk_page(db: sqlite3.Connection, q: str, status: str | None) -> list[int]:
    where, params = _matches(q)
    status_clause = "AND ticket.status = ?" if status else ""
    return [row[0] for row in db.execute(
        f"SELECT id FROM ticket WHERE {where} {status_clause} ORDER BY updated_at DESC, id DESC LIMIT ?",
        (*params, *([status] if status else []), PAGE))]


def index_page(db: sqlite3.Connection, q: str, status: str | None) -> list[int]:
    where, params = _matches(q)
    status_clause = "AND ticket.status = ?" if status else ""
    candidates = (
        "SELECT ticket_id FROM search_entry WHERE ticket_id IS NOT NULL AND id IN "
        "(SELECT rowid FROM search_gram WHERE search_gram MATCH ?) "
        "UNION SELECT t.id FROM ticket t WHERE t.customer_id IN (SELECT customer_id FROM search_entry "
        "WHERE ticket_id IS NULL AND id IN (SELECT rowid FROM search_gram WHERE search_gram MATCH ?))")
    rarest = fts_query(q.split()[0]) if q.split() else ""
    return [row[0] for row in db.execute(
        f"SELECT id FROM ticket WHERE id IN ({candidates}) AND {where} {status_clause} "
        "ORDER BY updated_at DESC, id DESC LIMIT ?",
        (rarest, rarest, *params, *([status] if status else []), PAGE))]


def timed(run: Callable[[], list[int]], rounds: int) -> tuple[list[float], list[int]]:
    spent, page = [], []
    for _ in range(rounds):
        t0 = time.process_time()
        page = run()
        spent.append(time.process_time() - t0)
    return spent, page


def measure(db: sqlite3.Connection, rounds: int) -> None:
    print("query | filter | entries, index plan p50 / p99 | entries, walk p50 / p99 "
          "| keyed p50 / p99 (ms CPU)")
    for q in [query for query in QUERIES if query]:
        for status in (None, "unhandled"):
            index, by_index = timed(lambda q=q, s=status: index_page(db, q, s), rounds)
            walk, by_walk = timed(lambda q=q, s=status: walk_page(db, q, s), 3)
            keyed, by_key = timed(lambda q=q, s=status: keyed_page(db, q, s), rounds)
            assert by_index == by_walk == by_key, (q, status, by_index[:5], by_walk[:5], by_key[:5])
            print(f"{q} | {status or '-'} | {ms(index)} | {ms(walk)} | {ms(keyed)} ({len(by_key)} rows)",
                  flush=True)


def ms(samples: list[float]) -> str:
    return f"{percentile(samples, 50) * 1000:.2f} / {percentile(samples, 99) * 1000:.2f}"


def activity_cost(db: sqlite3.Connection, n: int) -> None:
    """CPU of one ticket's activity in its own transaction, without and with re-keying its document."""
    rng = random.Random(3)
    total = db.execute("SELECT max(id) FROM ticket").fetchone()[0]
    key = db.execute("SELECT max(search_key) FROM ticket").fetchone()[0]
    latest = db.execute("SELECT max(updated_at) FROM ticket").fetchone()[0]
    plain = 0.0
    for ticket_id in rng.sample(range(1, total + 1), n):
        t0 = time.process_time()
        db.execute("BEGIN")
        # The same row write, its place in the activity order kept (this design re-keys on a move).
        db.execute("UPDATE ticket SET updated_at = updated_at, status = 'in_progress' WHERE id = ?",
                   (ticket_id,))
        db.execute("COMMIT")
        plain += time.process_time() - t0
    rekeyed = 0.0
    for ticket_id in rng.sample(range(1, total + 1), n):
        key += 1
        t0 = time.process_time()
        db.execute("BEGIN")
        old_key, customer = db.execute("SELECT search_key, customer_id FROM ticket WHERE id = ?",
                                       (ticket_id,)).fetchone()
        texts = [row[0] for row in db.execute(
            "SELECT text FROM search_entry WHERE ticket_id = ? ORDER BY id", (ticket_id,))]
        name = db.execute("SELECT folded FROM customer WHERE id = ?", (customer,)).fetchone()[0]
        doc = " ".join(grams.sqlite_document(text) for text in [*texts, name])
        db.execute("INSERT INTO search_ticket (search_ticket, rowid, grams) VALUES ('delete', ?, ?)",
                   (old_key, doc))
        db.execute("INSERT INTO search_ticket (rowid, grams) VALUES (?, ?)", (key, doc))
        db.execute("UPDATE ticket SET updated_at = ?, status = 'in_progress', search_key = ? "
                   "WHERE id = ?", (latest + key, key, ticket_id))
        db.execute("COMMIT")
        rekeyed += time.process_time() - t0
    print(f"a ticket's activity in its own transaction: {plain / n * 1e6:.0f} µs CPU; "
          f"re-keying its document too: {rekeyed / n * 1e6:.0f} µs ({n} tickets each)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--db", default="/tmp/search-keyed.db")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--activity", type=int, default=2000, help="tickets re-keyed for the write cost")
    args = parser.parse_args()
    if not args.reuse:
        for suffix in ("", "-wal", "-shm"):
            Path(args.db + suffix).unlink(missing_ok=True)
    db = open_db(args.db)
    if not args.reuse:
        t0 = time.perf_counter()
        fill(db, args.tickets)
        db.execute("ANALYZE")
        print(f"filled {args.tickets} tickets in {time.perf_counter() - t0:.0f} s")
    measure(db, args.rounds)
    activity_cost(db, args.activity)


if __name__ == "__main__":
    main()
