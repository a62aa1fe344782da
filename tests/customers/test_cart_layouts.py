"""Japanese carts' order exports: EC-CUBE's coded columns, cancelled and returned orders by the
carts' own words, and 送料 / 手数料 / 値引 as order fields rather than items."""

from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.auth.models import Role
from helpdesk.customers import orders as customer_orders
from helpdesk.customers.models import CustomerIdentity, Order, OrderItem
from helpdesk.imports.layouts import Kind, detect
from tests.customers.helpers import upload
from tests.support.staff import Staff


async def _customer_by_email(db: AsyncSession, email: str) -> int:
    await db.rollback()
    customer_id = await db.scalar(select(CustomerIdentity.customer_id).where(
        CustomerIdentity.kind == "email", CustomerIdentity.value == email))
    await db.rollback()  # SQLite readers here hold the write lock: let the server in
    assert customer_id is not None, email
    return int(customer_id)


async def test_an_eccube_export_in_cp932_counts_orders_totals_and_items(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    headers = Staff.headers(await staff.create("boss", Role.supervisor))
    response = await upload(http, headers, "orders", "orders_eccube_cp932.csv")
    assert response.status_code == 200, response.text
    summary = response.json()
    assert (summary["layout"], summary["encoding"]) == ("ecforce", "cp932")
    assert (summary["rows"], summary["created"], summary["skipped"]) == (7, 5, 0), summary

    yamada = (await http.get(f"/api/customers/{await _customer_by_email(db, 'yamada@example.jp')}",
                             headers=headers)).json()
    # 1002 was 注文取消し (対応状況(名称); 対応状況(ID) is only a code): listed, not a purchase
    assert [o["number"] for o in yamada["orders"]] == ["1002", "1001"]
    assert [o["status"] for o in yamada["orders"]] == ["注文取消し", "発送済み"]  # as the cart wrote it
    assert (yamada["orders_count"], yamada["total_spent"]) == (1, "5130.00")
    assert yamada["orders"][1]["items"] == [
        {"sku": "TEA-001", "name": "有機煎茶 100g", "quantity": 2, "unit_price": "1200.00"},
        {"sku": "CUP-203", "name": "有田焼 湯呑み①", "quantity": 1, "unit_price": "1800.00"}]
    assert yamada["name"] == "山田 太郎" and yamada["phones"] == ["+81312345678"]

    hanako = (await http.get(f"/api/customers/{await _customer_by_email(db, 'hanako@example.jp')}",
                             headers=headers)).json()
    # 返品 and キャンセル are not purchases; 1004's 送料 line is no item, 【送料無料】 is one
    assert (hanako["orders_count"], hanako["total_spent"]) == (1, "5500.00")
    gift = next(o for o in hanako["orders"] if o["number"] == "1004")
    assert [i["name"] for i in gift["items"]] == ["【送料無料】煎茶ギフト"]

    await db.rollback()
    charges = {number: (shipping, fees, discount, purchase) for number, shipping, fees, discount, purchase
               in (await db.execute(select(Order.number, Order.shipping, Order.fees, Order.discount,
                                           Order.is_purchase))).all()}
    await db.rollback()
    assert charges["1001"] == (Decimal(600), Decimal(330), Decimal(100), True)  # 使用ポイント 100
    assert charges["1004"] == (Decimal(800), Decimal(0), Decimal(300), True)  # column, not the line too
    assert [n for n, c in sorted(charges.items()) if not c[3]] == ["1002", "1003", "1005"]
    names = set(await db.scalars(select(OrderItem.name)))
    await db.rollback()
    assert "送料" not in names and "代引手数料" not in names


async def test_charge_lines_become_order_fields_when_the_file_has_no_such_columns(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    # futureshop / MakeShop style: one row per line, 送料 and 代引手数料 and ポイント as lines
    csv = ("受注番号,受注日,注文者氏名,購入者メールアドレス,商品名,商品番号,販売価格,数量,処理状況\r\n"
           "F-1,2026-11-01,鈴木 一郎,ichiro@example.jp,抹茶 50g,M-1,2000,2,発送済\r\n"
           "F-1,2026-11-01,鈴木 一郎,ichiro@example.jp,送料,,700,1,発送済\r\n"
           "F-1,2026-11-01,鈴木 一郎,ichiro@example.jp,代引手数料,,330,1,発送済\r\n"
           "F-1,2026-11-01,鈴木 一郎,ichiro@example.jp,ポイント利用,,-200,1,発送済\r\n"
           "F-2,2026-11-02,鈴木 一郎,ichiro@example.jp,抹茶 50g,M-1,2000,1,取り消し\r\n")
    headers = Staff.headers(await staff.create("boss", Role.supervisor))
    response = await upload(http, headers, "orders", "makeshop.csv", csv.encode("cp932"))
    assert response.status_code == 200 and response.json()["skipped"] == 0, response.text
    profile = (await http.get(f"/api/customers/{await _customer_by_email(db, 'ichiro@example.jp')}",
                              headers=headers)).json()
    first = next(o for o in profile["orders"] if o["number"] == "F-1")
    assert [i["name"] for i in first["items"]] == ["抹茶 50g"]
    assert first["total"] == "4830.00"  # 4000 + 700 + 330 − 200: no total column, summed
    assert (profile["orders_count"], profile["total_spent"]) == (1, "4830.00")  # F-2 取り消し
    await db.rollback()
    order = await db.scalar(select(Order).where(Order.number == "F-1"))
    assert order is not None and (order.shipping, order.fees, order.discount) == (700, 330, 200)
    await db.rollback()


@pytest.mark.parametrize(("status", "purchase"), [
    ("注文取消し", False), ("取消", False), ("取り消し", False), ("受注取消", False), ("キャンセル", False),
    ("ｷｬﾝｾﾙ済み", False), ("返品", False), ("返品済み", False), ("返金", False), ("返金済み", False),
    ("cancelled", False), ("Canceled", False), ("voided", False), ("refunded", False),
    ("partially_refunded", True), ("一部返金", True), ("paid", True), ("発送済み", True),
    ("新規受付", True), ("入金済み", True), ("", True)])
def test_not_purchases_are_read_by_the_carts_words(status: str, purchase: bool) -> None:
    assert customer_orders.is_purchase(status) is purchase


@pytest.mark.parametrize(("header", "wanted"), [
    # EC-CUBE: coded columns twice, (ID) and (名称); the words are read
    (["注文番号", "注文日", "対応状況(ID)", "対応状況(名称)", "送料", "手数料", "値引き", "合計"],
     {"status": [3], "shipping": [4], "fees": [5], "discount": [6], "total": [7]}),
    (["注文番号", "注文日", "対応状況", "合計"], {"status": [2], "total": [3]}),
    # MakeShop / カラーミー / futureshop spellings
    (["注文番号", "注文日", "処理状況", "代引手数料", "決済手数料", "ポイント利用額", "合計金額"],
     {"status": [2], "fees": [3, 4], "discount": [5], "total": [6]}),
    (["売上ID", "受注日", "販売個数", "クーポン値引額", "送料"],
     {"number": [0], "quantity": [2], "discount": [3], "shipping": [4]}),
    (["受注コード", "受注日時", "受注ステータス(名称)", "送料合計"],
     {"number": [0], "status": [2], "shipping": [3]}),
    # Shopify's order export
    (["Name", "Financial Status", "Lineitem name", "Shipping", "Discount Amount", "Total",
      "Billing Country"],
     {"number": [0], "status": [1], "shipping": [3], "discount": [4], "total": [5], "country": [6]}),
])
def test_cart_headers_with_and_without_their_suffixes(header: list[str],
                                                     wanted: dict[str, list[int]]) -> None:
    layout = detect(Kind.orders, header)
    assert {name: layout.columns[name] for name in wanted} == wanted


async def test_a_row_with_a_country_reads_its_phone_and_name_there(
        http: httpx.AsyncClient, db: AsyncSession, staff: Staff) -> None:
    csv = ("Order Number,Order Date,First Name,Last Name,Email,Phone,Country,Item Name,Price,Quantity\r\n"
           "US-1,2026-11-03,Bob,Norman,bob@example.com,555-625-1199,US,Green tea,20.00,1\r\n"
           "JP-1,2026-11-03,太郎,本田,honda@example.jp,03-1234-5678,JP,煎茶,1200,1\r\n")
    headers = Staff.headers(await staff.create("boss", Role.supervisor))
    response = await upload(http, headers, "orders", "orders.csv", csv.encode())
    assert response.status_code == 200 and response.json()["imported"] == 2, response.text
    for email, name, phone in (("bob@example.com", "Bob Norman", "+15556251199"),
                               ("honda@example.jp", "本田 太郎", "+81312345678")):
        profile = (await http.get(f"/api/customers/{await _customer_by_email(db, email)}",
                                  headers=headers)).json()
        assert (profile["name"], profile["phones"]) == (name, [phone])
