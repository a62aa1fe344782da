"""Amounts and order fingerprints: the quick paths give what the general ones give."""

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from helpdesk.customers.models import IncomingOrder, OrderLine
from helpdesk.customers.orders import order_digest
from helpdesk.imports.service import RowError, parse_money


@pytest.mark.parametrize(("raw", "expected"), [
    ("1200", "1200.00"), ("0012", "12.00"), ("0", "0.00"), ("999999999999", "999999999999.00"),
    ("１２００", "1200.00"), ("1,200", "1200.00"), ("¥1200", "1200.00"), ("1200円", "1200.00"),
    ("1200.5", "1200.50"), ("12.345", "12.34")])
def test_amounts_as_exports_write_them(raw: str, expected: str) -> None:
    value = parse_money(raw, "total")
    assert str(value) == expected and value.as_tuple().exponent == -2


@pytest.mark.parametrize("raw", ["1000000000000", "-5", "abc", "1e5x"])
def test_amounts_out_of_range_or_unreadable_are_refused(raw: str) -> None:
    with pytest.raises(RowError):
        parse_money(raw, "total")


def _reference_digest(order: IncomingOrder) -> str:
    """The fingerprint spelled out: every amount formatted with two decimals, times in UTC."""
    import hashlib
    parts = [order.number, order.external_id or "", order.ordered_at.astimezone(UTC).isoformat(),
             order.status, f"{order.total:.2f}", order.currency]
    parts += [f"{i.sku}\x1f{i.name}\x1f{i.quantity}\x1f{i.unit_price:.2f}" for i in order.items]
    return hashlib.blake2b("\x1e".join(parts).encode(), digest_size=16).hexdigest()


@pytest.mark.parametrize("amount", ["1200.00", "0.5", "1E+3", "12.345", "0", "7.10"])
@pytest.mark.parametrize("zone", [UTC, timezone(timedelta(hours=9))])
def test_fingerprints_do_not_depend_on_how_amounts_and_times_are_held(amount: str,
                                                                       zone: timezone) -> None:
    """Stored fingerprints stay valid: an unchanged order is still recognised as unchanged."""
    order = IncomingOrder(source="csv", number="#1", external_id="9",
                          ordered_at=datetime(2024, 5, 1, 10, tzinfo=zone), status="paid",
                          total=Decimal(amount), items=[OrderLine("T1", "茶", 2, Decimal(amount))])
    assert order_digest(order) == _reference_digest(order)
