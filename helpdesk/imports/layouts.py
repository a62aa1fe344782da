"""Column layouts of the exports shops bring: Shopify, Japanese carts (EC-CUBE, futureshop,
MakeShop, カラーミー, ecforce), and others.

Headers are compared after NFKC, lower-casing and dropping spaces, brackets and separators, so
``お名前（姓）``, ``お名前(姓)`` and ``お名前 姓`` are one column. EC-CUBE writes a coded column
twice, ``対応状況(ID)`` and ``対応状況(名称)``: the ``(名称)`` one, the words, is read. A
``--map`` names columns for any other export: ``email=メールアドレス,phone=電話番号``.
"""

import re
from dataclasses import dataclass, field
from enum import StrEnum

from helpdesk import normalize
from helpdesk.errors import BadInput


class Kind(StrEnum):
    customers = "customers"
    orders = "orders"


_CONTACT: dict[str, tuple[str, ...]] = {
    "email": ("email", "emailaddress", "mail", "メールアドレス", "メール", "eメール",
              "eメールアドレス", "顧客メールアドレス", "購入者メールアドレス", "注文者メールアドレス",
              "請求先メールアドレス"),
    "phone": ("phone", "phonenumber", "tel", "telephone", "mobile", "電話番号", "電話", "tel番号",
              "携帯電話番号", "携帯番号", "顧客電話番号", "購入者電話番号", "注文者電話番号",
              "請求先電話番号", "defaultaddressphone", "billingphone", "shippingphone",
              "注文者tel", "購入者tel", "お届け先電話番号"),
    # A country code (JP, US): the phone is read as that country's number, the name in its order.
    "country": ("country", "countrycode", "billingcountry", "billingcountrycode",
                "defaultaddresscountrycode", "shippingcountry", "国", "国コード", "国名"),
    "name": ("fullname", "customername", "氏名", "お名前", "名前", "顧客名", "購入者名", "購入者氏名",
             "注文者名", "注文者氏名", "請求先氏名", "請求先名前", "billingname", "購入者名前",
             "注文者お名前", "ご注文者氏名", "ご注文者名"),
    "last_name": ("lastname", "familyname", "姓", "お名前姓", "氏名姓", "顧客姓", "購入者姓",
                  "注文者姓", "請求先姓", "請求先お名前姓"),
    "first_name": ("firstname", "givenname", "名", "お名前名", "氏名名", "顧客名名", "購入者名名",
                   "注文者名名", "請求先名", "請求先お名前名"),
    "name_kana": ("namekana", "kana", "カナ", "フリガナ", "ふりがな", "氏名カナ", "氏名フリガナ",
                  "お名前フリガナ", "お名前カナ", "顧客名カナ", "購入者フリガナ", "注文者フリガナ",
                  "請求先フリガナ"),
    "last_name_kana": ("lastnamekana", "セイ", "姓カナ", "姓フリガナ", "お名前セイ", "氏名セイ",
                       "フリガナセイ", "顧客セイ", "購入者セイ", "注文者セイ", "請求先セイ",
                       "請求先お名前セイ"),
    "first_name_kana": ("firstnamekana", "メイ", "名カナ", "名フリガナ", "お名前メイ", "氏名メイ",
                        "フリガナメイ", "顧客メイ", "購入者メイ", "注文者メイ", "請求先メイ",
                        "請求先お名前メイ"),
}
_CUSTOMER_ONLY: dict[str, tuple[str, ...]] = {
    "tags": ("tags", "tag", "タグ", "顧客タグ"),
    "note": ("note", "notes", "備考", "メモ", "顧客メモ", "顧客備考"),
}
_ORDER_ONLY: dict[str, tuple[str, ...]] = {
    "number": ("ordernumber", "orderno", "orderid", "受注番号", "注文番号", "受注id", "注文id",
               "受注no", "注文no", "受注コード", "注文コード", "売上id"),
    "external_id": ("externalid", "外部id", "外部受注番号"),
    "ordered_at": ("orderedat", "orderdate", "createdat", "受注日時", "受注日", "注文日時", "注文日",
                   "購入日時", "購入日"),
    "status": ("status", "financialstatus", "orderstatus", "対応状況", "受注ステータス", "ステータス",
               "注文ステータス", "受注状況", "注文状況", "注文状態", "受注状態", "処理状況",
               "ステータス名"),
    "cancelled_at": ("cancelledat", "キャンセル日時", "キャンセル日", "取消日", "取消日時"),
    "total": ("total", "ordertotal", "totalprice", "合計金額", "合計", "総合計", "お支払い合計",
              "お支払合計", "支払合計", "支払い合計", "支払金額", "請求金額", "受注金額", "注文金額",
              "購入金額", "総額", "税込合計"),
    # Charges and deductions: order fields, added up when several columns exist.
    "shipping": ("shipping", "shippingcharge", "shippingprice", "送料", "送料合計", "配送料",
                 "送料税込"),
    "fees": ("fees", "fee", "手数料", "代引手数料", "代金引換手数料", "決済手数料", "支払手数料",
             "支払い手数料", "代引き手数料", "ラッピング料金"),
    "discount": ("discountamount", "discount", "値引", "値引き", "値引額", "値引き額", "割引",
                 "割引額", "クーポン値引", "クーポン値引額", "クーポン割引額",
                 "ポイント値引額", "クーポン値引き", "クーポン割引", "クーポン利用額",
                 "ポイント値引", "ポイント値引き", "ポイント利用", "ポイント利用額", "使用ポイント",
                 "利用ポイント", "ポイント割引"),
    "currency": ("currency", "通貨"),
    "sku": ("sku", "lineitemsku", "itemsku", "productcode", "商品コード", "品番", "商品番号",
            "skuコード", "商品管理番号", "型番", "独自商品コード", "商品id"),
    "item_name": ("itemname", "productname", "lineitemname", "商品名", "品名", "商品名称"),
    "quantity": ("quantity", "qty", "lineitemquantity", "数量", "個数", "注文数", "購入数", "販売個数"),
    "unit_price": ("unitprice", "price", "lineitemprice", "単価", "商品単価", "販売価格", "価格",
                   "税込単価", "商品価格", "税込価格"),
}
# Shopify's order export calls the order number "Name" and the buyer "Billing Name".
_SHOPIFY_ORDERS = {"number": ("name",), "external_id": ("id",), "phone": ("phone",)}
_GENERIC_CUSTOMERS = {"name": ("name",)}
_SHOPIFY_MARKS = {Kind.orders: {"lineitemname", "financialstatus", "lineitemquantity"},
                  Kind.customers: {"acceptsemailmarketing", "defaultaddressphone", "totalspent",
                                   "acceptsmarketing", "customerid"}}
_SOURCES = {"shopify": "shopify", "ecforce": "ecforce", "generic": "csv"}
_ID_FIELDS = {"number", "external_id", "sku"}
FIELDS = {Kind.customers: {**_CONTACT, **_CUSTOMER_ONLY}, Kind.orders: {**_CONTACT, **_ORDER_ONLY}}


def header_key(header: str) -> str:
    """A header folded for comparison."""
    return re.sub(r"[\s_\-・/:：.()（）\[\]【】「」<>＜＞]", "", normalize.nfkc(header).lower())


@dataclass
class Layout:
    """Which columns (by index, first non-empty wins) feed each field."""

    name: str
    source: str
    columns: dict[str, list[int]] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return bool(self.columns.get(name))


def parse_map(text: str | None) -> dict[str, str]:
    """``field=Column,field=Column`` as a dict; 422 for an unknown field or a malformed pair."""
    mapping: dict[str, str] = {}
    known = set(FIELDS[Kind.customers]) | set(FIELDS[Kind.orders])
    for pair in filter(None, (p.strip() for p in (text or "").split(","))):
        name, sep, column = pair.partition("=")
        if not sep or not column.strip() or name.strip() not in known:
            raise BadInput(f"bad mapping {pair!r}: use field=Column with a field among "
                           f"{', '.join(sorted(known))}")
        mapping[name.strip()] = column.strip()
    return mapping


def detect(kind: Kind, header: list[str], mapping: dict[str, str] | None = None) -> Layout:
    """The layout of a file from its header row, with ``mapping`` taking precedence."""
    keys = [header_key(h) for h in header]
    name = _layout_name(kind, keys)
    aliases = dict(FIELDS[kind])
    if name == "shopify" and kind == Kind.orders:
        aliases = {k: _SHOPIFY_ORDERS.get(k, ()) + v for k, v in aliases.items()}
    elif kind == Kind.customers:
        aliases = {k: v + _GENERIC_CUSTOMERS.get(k, ()) for k, v in aliases.items()}
    layout = Layout(name=name, source=_SOURCES[name])
    for field_name, names in aliases.items():
        layout.columns[field_name] = [keys.index(k) for k in _spellings(field_name, names) if k in keys]
    for field_name, column in (mapping or {}).items():
        if header_key(column) not in keys:
            raise BadInput(f"mapped column {column!r} is not in the file's header")
        layout.columns[field_name] = [keys.index(header_key(column))]
    return layout


def _spellings(field_name: str, names: tuple[str, ...]) -> list[str]:
    """Each alias as EC-CUBE also writes it: ``(名称)`` first (the words), then bare, then
    ``(ID)`` for the identifiers only (a status's ID is a code, not its name)."""
    found: list[str] = []
    for name in names:
        found += [name + "名称", name]
        if field_name in _ID_FIELDS:
            found.append(name + "id")
    return list(dict.fromkeys(found))


def _layout_name(kind: Kind, keys: list[str]) -> str:
    if _SHOPIFY_MARKS[kind] & set(keys):
        return "shopify"
    if any(re.search(r"[ぁ-んァ-ヶ一-龥]", k) for k in keys):
        return "ecforce"
    return "generic"
