"""Column layouts of the exports shops bring: Shopify, Japanese carts (ecforce style), and others.

Headers are compared after NFKC, lower-casing and dropping spaces, brackets and separators, so
``お名前（姓）``, ``お名前(姓)`` and ``お名前 姓`` are one column. A ``--map`` names columns
for any other export: ``email=メールアドレス,phone=電話番号``.
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
              "請求先電話番号", "defaultaddressphone", "billingphone", "shippingphone"),
    "name": ("fullname", "customername", "氏名", "お名前", "名前", "顧客名", "購入者名", "購入者氏名",
             "注文者名", "注文者氏名", "請求先氏名", "請求先名前", "billingname"),
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
               "受注no", "注文no"),
    "external_id": ("externalid", "外部id", "外部受注番号"),
    "ordered_at": ("orderedat", "orderdate", "createdat", "受注日時", "受注日", "注文日時", "注文日",
                   "購入日時", "購入日"),
    "status": ("status", "financialstatus", "orderstatus", "対応状況", "受注ステータス", "ステータス",
               "注文ステータス"),
    "cancelled_at": ("cancelledat", "キャンセル日時", "キャンセル日"),
    "total": ("total", "ordertotal", "totalprice", "合計金額", "合計", "総合計", "お支払い合計",
              "お支払合計", "支払合計", "支払金額", "請求金額", "受注金額"),
    "currency": ("currency", "通貨"),
    "sku": ("sku", "lineitemsku", "itemsku", "productcode", "商品コード", "品番", "商品番号",
            "skuコード", "商品管理番号"),
    "item_name": ("itemname", "productname", "lineitemname", "商品名"),
    "quantity": ("quantity", "qty", "lineitemquantity", "数量", "個数"),
    "unit_price": ("unitprice", "price", "lineitemprice", "単価", "商品単価", "販売価格", "価格"),
}
# Shopify's order export calls the order number "Name" and the buyer "Billing Name".
_SHOPIFY_ORDERS = {"number": ("name",), "external_id": ("id",), "phone": ("phone",)}
_GENERIC_CUSTOMERS = {"name": ("name",)}
_SHOPIFY_MARKS = {Kind.orders: {"lineitemname", "financialstatus", "lineitemquantity"},
                  Kind.customers: {"acceptsemailmarketing", "defaultaddressphone", "totalspent",
                                   "acceptsmarketing", "customerid"}}
_SOURCES = {"shopify": "shopify", "ecforce": "ecforce", "generic": "csv"}
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
        layout.columns[field_name] = [keys.index(n) for n in names if n in keys]
    for field_name, column in (mapping or {}).items():
        if header_key(column) not in keys:
            raise BadInput(f"mapped column {column!r} is not in the file's header")
        layout.columns[field_name] = [keys.index(header_key(column))]
    return layout


def _layout_name(kind: Kind, keys: list[str]) -> str:
    if _SHOPIFY_MARKS[kind] & set(keys):
        return "shopify"
    if any(re.search(r"[ぁ-んァ-ヶ一-龥]", k) for k in keys):
        return "ecforce"
    return "generic"
