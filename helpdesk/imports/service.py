"""Turning CSV rows into customers and orders: normalising, validating, grouping, batching.

Bad rows are reported with their line number and reason and the rest go on; nothing here
touches the database.
"""

import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from helpdesk import normalize
from helpdesk.customers import orders as customer_orders
from helpdesk.customers.models import IncomingCustomer, IncomingOrder, OrderLine
from helpdesk.imports.layouts import Layout
from helpdesk.imports.models import ImportSummary, RowProblem

# Rows per batch, and so per transaction. Larger batches write each page of the order indexes to
# the log fewer times (10,000 rows import a million orders about a tenth faster than 5,000);
# smaller ones keep other writers (a screen pop, a webhook) waiting less behind an import: at
# most one batch, about half a second at this size.
BATCH = 10_000
MAX_PROBLEMS = 1000
_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})[-/.月](\d{1,2})日?"
                   r"(?:[ T]+(\d{1,2})[:時](\d{1,2})(?:[:分](\d{1,2})(?:\.\d+)?秒?)?)?"
                   r"\s*(Z|[+-]\d{2}:?\d{2})?$")
_MONEY_JUNK = re.compile(r"[,\s¥￥円$]|JPY", re.IGNORECASE)
_COUNTRY_NAMES = {"日本": "JP", "japan": "JP", "アメリカ": "US", "アメリカ合衆国": "US", "米国": "US",
                  "united states": "US", "usa": "US"}
# Lines that are charges or deductions rather than goods, as carts list them (futureshop,
# MakeShop): the whole name must be one of these, so 【送料無料】煎茶 stays an item.
_CHARGE_LINE = re.compile(
    r"(?P<shipping>送料|配送料|送料合計|shipping)"
    r"|(?P<fees>(代引き?|代金引換|決済|支払い?)?手数料|ラッピング料金?|cod fee)"
    r"|(?P<discount>(ポイント|クーポン)(利用|値引き?|割引)?(額)?|使用ポイント|利用ポイント|値引き?|割引|"
    r"discount|coupon)")


class RowError(Exception):
    """Why one row cannot be imported."""


class Contacts:
    """Email and phone normalisation with a cache: an orders file repeats each customer often."""

    def __init__(self, region: str) -> None:
        self.region = region
        self.phone: Callable[[str], str | None] = lru_cache(maxsize=300_000)(
            lambda raw: normalize.phone(raw, region))
        self.email: Callable[[str], str | None] = lru_cache(maxsize=300_000)(normalize.email)

    def pair(self, email: str, phone: str, country: str | None = None) -> tuple[str | None, str | None]:
        """Normalised (email, phone), the phone read in ``country`` when the row names one;
        RowError when neither is usable."""
        number = None
        if phone:
            number = self.phone(phone) if country in (None, self.region) else normalize.phone(
                phone, country)
        found = (self.email(email) if email else None, number)
        if found == (None, None):
            if email or phone:
                raise RowError(f"neither email {email!r} nor phone {phone!r} is valid")
            raise RowError("no email or phone to identify the customer")
        return found


def cell(cells: list[str], layout: Layout, name: str) -> str:
    """The first non-empty cell of the columns feeding ``name``, stripped."""
    for index in layout.columns.get(name, ()):
        if index < len(cells) and (value := cells[index].strip()):
            return value
    return ""


def _full(cells: list[str], layout: Layout, whole: str, last: str, first: str) -> str | None:
    value = cell(cells, layout, whole) or " ".join(
        filter(None, (cell(cells, layout, last), cell(cells, layout, first))))
    return normalize.kept(value) if value else None


def name_of(cells: list[str], layout: Layout, country: str | None = None) -> str | None:
    """Full name from one column, or from family and given names in the order the row's
    country writes them (family first in Japan and when there is no country)."""
    whole = cell(cells, layout, "name")
    if whole or country is None:
        return _full(cells, layout, "name", "last_name", "first_name")
    return normalize.person_name(cell(cells, layout, "last_name"), cell(cells, layout, "first_name"),
                                 country=country)


def country_of(cells: list[str], layout: Layout) -> str | None:
    """The row's country as an ISO 3166 code, when it names one (``US``, ``jp``, ``日本``)."""
    if not layout.has("country"):
        return None
    value = cell(cells, layout, "country")
    return normalize.region(value) or _COUNTRY_NAMES.get(normalize.nfkc(value).lower())


def kana_of(cells: list[str], layout: Layout) -> str | None:
    """The reading as written (search folds it to katakana)."""
    return _full(cells, layout, "name_kana", "last_name_kana", "first_name_kana")


def parse_datetime(raw: str, tz: tzinfo) -> datetime:
    """A date or date-time as exports write them (ISO, ``2024/1/5 10:00``, Shopify's ``+0900``)."""
    text = raw if raw.isascii() else normalize.nfkc(raw)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        match = _DATE.match(text.strip())
        if not match:
            raise RowError(f"bad date {raw!r}") from None
        value = _from_match(match, raw)
    return value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(UTC)


def _from_match(match: re.Match[str], raw: str) -> datetime:
    year, month, day, hour, minute, second, offset = match.groups()
    iso = f"{year}-{int(month):02d}-{int(day):02d}T{int(hour or 0):02d}:{int(minute or 0):02d}:" \
          f"{int(second or 0):02d}"
    if offset:
        iso += "+00:00" if offset == "Z" else f"{offset[:3]}:{offset[-2:]}"
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        raise RowError(f"bad date {raw!r}") from None


def parse_money(raw: str, what: str) -> Decimal:
    """An amount like ``1,200``, ``¥1200`` or ``1200円``; RowError unless a non-negative number."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 12:  # most exports: whole yen
        return Decimal(raw + ".00")
    text = _MONEY_JUNK.sub("", raw if raw.isascii() else normalize.nfkc(raw))
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RowError(f"bad {what} {raw!r}") from None
    if not value.is_finite() or value < 0 or value >= Decimal("1e12"):
        raise RowError(f"bad {what} {raw!r}")
    return value.quantize(Decimal("0.01"))


def parse_quantity(raw: str) -> int:
    """A line's quantity; 1 when left empty."""
    text = normalize.nfkc(raw).replace(",", "") if raw else "1"
    if not text.isdigit() or int(text) > 1_000_000:
        raise RowError(f"bad quantity {raw!r}")
    return int(text)


def problem(summary: ImportSummary, line: int, reason: str) -> None:
    """Count a skipped row and keep its reason (the first MAX_PROBLEMS of them)."""
    summary.skipped += 1
    if len(summary.problems) < MAX_PROBLEMS:
        summary.problems.append(RowProblem(line=line, reason=reason))
    else:
        summary.problems_truncated = True


def customer_batches(
    rows: Iterable[tuple[int, list[str]]], layout: Layout, summary: ImportSummary, region: str
) -> Iterator[list[IncomingCustomer]]:
    """Customers in batches of BATCH; bad rows go to ``summary``."""
    contacts = Contacts(region)
    batch: list[IncomingCustomer] = []
    for line, cells in rows:
        summary.rows += 1
        try:
            batch.append(_customer(cells, layout, contacts))
        except RowError as exc:
            problem(summary, line, str(exc))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _customer(cells: list[str], layout: Layout, contacts: Contacts) -> IncomingCustomer:
    country = country_of(cells, layout)
    email, phone = contacts.pair(cell(cells, layout, "email"), cell(cells, layout, "phone"), country)
    tags = [normalize.nfkc(t) for t in re.split(r"[,、]", cell(cells, layout, "tags")) if t.strip()]
    note = cell(cells, layout, "note")
    return IncomingCustomer(email=email, phone=phone, name=name_of(cells, layout, country),
                            name_kana=kana_of(cells, layout), tags=tags, note=note or None)


class _OrderGrouper:
    """Collects the lines of each order (one row per line item, as exports write them)."""

    def __init__(self, layout: Layout, summary: ImportSummary, region: str, tz: tzinfo) -> None:
        self.layout, self.summary, self.tz = layout, summary, tz
        self.contacts = Contacts(region)
        self.orders: dict[str, IncomingOrder] = {}
        self.rejected: set[str] = set()
        self.summed: set[str] = set()  # orders whose total comes from their lines

    def add(self, line: int, cells: list[str], number: str) -> None:
        self.summary.rows += 1
        try:
            if not number:
                raise RowError("no order number")
            if number in self.rejected:
                raise RowError(f"order {number} was rejected on an earlier line")
            order = self.orders.get(number)
            if order is None:
                order = self._start(number, cells)
                self._add_line(order, cells)
                self.orders[number] = order
            else:
                self._add_line(order, cells)
        except RowError as exc:
            if number and number not in self.orders:
                self.rejected.add(number)
            problem(self.summary, line, str(exc))

    def _start(self, number: str, cells: list[str]) -> IncomingOrder:
        layout = self.layout
        country = country_of(cells, layout)
        email, phone = self.contacts.pair(cell(cells, layout, "email"), cell(cells, layout, "phone"),
                                          country)
        ordered = cell(cells, layout, "ordered_at")
        if not ordered:
            raise RowError("no order date")
        total = cell(cells, layout, "total")
        status = cell(cells, layout, "status")
        if cell(cells, layout, "cancelled_at") and customer_orders.is_purchase(status):
            status = "cancelled"
        order = IncomingOrder(
            source=layout.source, number=number[:64], ordered_at=parse_datetime(ordered, self.tz),
            external_id=cell(cells, layout, "external_id").lstrip("'")[:64] or None,
            status=status[:40], currency=(cell(cells, layout, "currency") or "JPY")[:3],
            total=parse_money(total, "total") if total else Decimal(0),
            email=email, phone=phone, name=name_of(cells, layout, country),
            name_kana=kana_of(cells, layout), region=country,
            shipping=_charge(cells, layout, "shipping"), fees=_charge(cells, layout, "fees"),
            discount=_charge(cells, layout, "discount"))
        if not total:
            self.summed.add(number)
            order.total = order.shipping + order.fees - order.discount
        return order

    def _add_line(self, order: IncomingOrder, cells: list[str]) -> None:
        layout = self.layout
        sku, name = cell(cells, layout, "sku"), cell(cells, layout, "item_name")
        price = cell(cells, layout, "unit_price")
        if not (sku or name):
            return
        if len(name) <= 16 and (kind := _charge_kind(name)):  # charge names are short
            self._add_charge(order, kind, cells, price)
            return
        item = OrderLine(sku=sku, name=name,
                         quantity=parse_quantity(cell(cells, layout, "quantity")),
                         unit_price=parse_money(price, "unit price") if price else Decimal(0))
        order.items.append(item)
        if order.number in self.summed:
            order.total += item.unit_price * item.quantity

    def _add_charge(self, order: IncomingOrder, kind: str, cells: list[str], price: str) -> None:
        """A 送料 or 値引 line: added to the order's field (unless the file has columns for it,
        which hold the same amount), its total kept if the file gave one."""
        if self.layout.has(kind):
            return
        amount = parse_money(price.replace("-", "").replace("−", ""), kind) if price else Decimal(0)
        amount *= parse_quantity(cell(cells, self.layout, "quantity"))
        setattr(order, kind, getattr(order, kind) + amount)
        if order.number in self.summed:
            order.total += -amount if kind == "discount" else amount

    def take(self) -> list[IncomingOrder]:
        """The orders gathered so far (called only where a new order number begins)."""
        orders = list(self.orders.values())
        for order in orders:  # here, so a parser in another process does this work too
            order.digest = customer_orders.order_digest(order)
        self.orders.clear()
        self.summed.clear()
        return orders


@lru_cache(maxsize=4096)
def _charge_kind(name: str) -> str | None:
    """shipping, fees or discount when a line's whole name is such a charge (items repeat: cached)."""
    key = re.sub(r"[\s()（）\[\]【】「」:：・]", "", normalize.nfkc(name).lower())
    found = _CHARGE_LINE.fullmatch(key)
    return found.lastgroup if found else None


def _charge(cells: list[str], layout: Layout, kind: str) -> Decimal:
    """The sum of an order's columns for a charge or deduction (minus signs dropped: a
    deduction is stored as the amount taken off)."""
    total = Decimal(0)
    for index in layout.columns.get(kind, ()):
        raw = cells[index].strip() if index < len(cells) else ""
        if raw:
            total += parse_money(raw.replace("-", "").replace("−", "").replace("▲", ""), kind)
    return total


def order_batches(
    rows: Iterable[tuple[int, list[str]]], layout: Layout, summary: ImportSummary, region: str,
    tz: tzinfo,
) -> Iterator[list[IncomingOrder]]:
    """Orders in batches of about BATCH; a batch ends only where a new order number begins."""
    grouper = _OrderGrouper(layout, summary, region, tz)
    last = ""
    for line, cells in rows:
        number = normalize.nfkc(cell(cells, layout, "number"))
        if len(grouper.orders) >= BATCH and number != last:
            yield grouper.take()
        grouper.add(line, cells, number)
        last = number
    if grouper.orders:
        yield grouper.take()
