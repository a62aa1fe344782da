"""Searched ticket pages: the newest matches first, without collecting every match.

Two ways to a page, chosen per query by how many entries the index holds for its words:

- A frequent word (返品 in a tenth of the tickets) is found fastest by walking the tickets newest
  first and checking each one's few entries, stopping once the page is full: about
  ``page / share`` tickets are read whatever the size of the table.
- A rarer word is found fastest by asking the index for its tickets and ordering those.

The walk costs more per ticket than the index per match, so the index is asked while a word has
fewer than about ``sqrt(WALK_COST_RATIO * page * tickets)`` entries (the point where both cost
the same): counted from FTS5 alone on SQLite, estimated by the planner on PostgreSQL. Either
way the page holds exactly the tickets a plain scan would, in the same order.
"""

import math
from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, literal_column, or_, select, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import CompoundSelect, Select
from sqlmodel import col

from helpdesk.customers import service as customers
from helpdesk.search import service as search
from helpdesk.storage.sessions import dialect_of
from helpdesk.tickets.models import Ticket

# How much more checking one ticket on the walk costs than taking one match from the index.
WALK_COST_RATIO = 3
FEWEST, MOST = 200, 20_000  # bounds of the number of index matches ordered rather than walked


def matches(dialect: str, term: search.Term) -> ColumnElement[bool]:
    """Tickets with ``term`` in a message or subject, their customer's entry, or an order number."""
    own, customer = search.entries(), search.entries()
    # Scalar subqueries, not EXISTS: PostgreSQL would hash an EXISTS over every entry that
    # contains the word before the first ticket, where the walk wants a probe per ticket.
    return or_(
        select(literal_column("1")).where(own.c.ticket_id == col(Ticket.id),
                                          search.contains(dialect, own, term))
        .limit(1).scalar_subquery().is_not(None),
        select(literal_column("1")).where(customer.c.customer_id == col(Ticket.customer_id),
                                          customer.c.ticket_id.is_(None),
                                          search.contains(dialect, customer, term))
        .limit(1).scalar_subquery().is_not(None),
        col(Ticket.customer_id).in_(customers.with_order_number(term.text)),
    )


async def page(
    session: AsyncSession, stmt: Select[Ticket], terms: Sequence[search.Term], *, limit: int
) -> list[Ticket]:
    """Up to ``limit + 1`` tickets of ``stmt`` (filters and cursor applied) matching every term,
    newest activity first."""
    found = await narrowed(session, stmt, terms, page=limit + 1)
    order = (col(Ticket.updated_at).desc(), col(Ticket.id).desc())
    return list(await session.scalars(found.order_by(*order).limit(limit + 1)))


async def narrowed(
    session: AsyncSession, stmt: Select[Ticket], terms: Sequence[search.Term], *, page: int = 50
) -> Select[Ticket]:
    """``stmt`` cut down to the tickets matching every term: to the index's answer for the
    rarest word when it is short, else checked ticket by ticket."""
    tickets = await session.scalar(select(func.max(col(Ticket.id)))) or 0
    cap = int(min(MOST, max(FEWEST, math.sqrt(WALK_COST_RATIO * page * tickets))))
    counted = [(await search.count(session, term, cap=cap), term) for term in terms]
    few, rarest = min(counted, key=lambda pair: pair[0])
    dialect = dialect_of(session)
    if few > cap:
        return stmt.where(*(matches(dialect, term) for term in terms))
    return stmt.where(col(Ticket.id).in_(candidates(dialect, rarest)),
                      *(matches(dialect, term) for term in terms if term is not rarest))


def candidates(dialect: str, term: search.Term) -> CompoundSelect:
    """The ids of the tickets matching ``term``, from the index (entries, customers, orders)."""
    own, customer = search.entries(), search.entries()
    by_entry = select(own.c.ticket_id).where(search.indexed(dialect, term, own),
                                             own.c.ticket_id.is_not(None))
    of_customers = select(customer.c.customer_id).where(search.indexed(dialect, term, customer),
                                                        customer.c.ticket_id.is_(None))
    by_customer = select(col(Ticket.id)).where(col(Ticket.customer_id).in_(of_customers))
    by_order = select(col(Ticket.id)).where(
        col(Ticket.customer_id).in_(customers.with_order_number(term.text)))
    return union(by_entry, by_customer, by_order)
