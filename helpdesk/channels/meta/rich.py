"""What an operator reads for Meta messages that are not plain text: the customer's choice on a
button or list, a location with a map link, shared contacts, a catalogue order, a system notice.

Each shows the readable content the payload carries, exactly as the customer's app showed it,
after a short bracketed label in the style of the other placeholders (``[画像]``).
"""

from typing import Any

from helpdesk.channels.places import location_text

PLACEHOLDERS = {"image": "[画像]", "video": "[動画]", "audio": "[音声]", "file": "[ファイル]",
                "document": "[ファイル]", "sticker": "[スタンプ]",
                "contacts": "[連絡先]", "order": "[注文]", "system": "[システム]",
                "unsupported": "[未対応のメッセージ]", "fallback": "[リンク]"}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _inner(value: dict[str, Any], key: str) -> dict[str, Any]:
    inner = value.get(key)
    return inner if isinstance(inner, dict) else {}


def _dicts(value: object) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _lines(*parts: object) -> str:
    return "\n".join(str(p) for p in parts if p not in (None, ""))


def whatsapp_text(kind: str, message: dict[str, Any]) -> str:
    """The text for one WhatsApp Cloud API message of ``kind`` (not reactions or edits)."""
    content = _inner(message, kind)
    if kind == "text":
        return str(content.get("body", ""))
    if kind == "interactive":
        return _interactive(content)
    if kind == "button":  # a quick-reply button of a template message
        return _str(content.get("text")) or _str(content.get("payload")) or "[button]"
    if kind == "location":
        return location_text(content.get("name"), content.get("address"),
                             content.get("latitude"), content.get("longitude"), content.get("url"))
    if kind == "contacts":
        return _lines(PLACEHOLDERS["contacts"], *(_contact(c) for c in _dicts(message.get("contacts"))))
    if kind == "order":
        return _order(content)
    if kind == "system":
        return _lines(PLACEHOLDERS["system"], _str(content.get("body")))
    if kind == "unsupported":
        errors = _dicts(message.get("errors"))
        return _lines(PLACEHOLDERS["unsupported"], *(_str(e.get("title")) for e in errors))
    label = PLACEHOLDERS.get(kind, f"[{kind}]")
    return " ".join(p for p in (label, _str(content.get("caption"))) if p)


def _interactive(content: dict[str, Any]) -> str:
    """The button or list row the customer chose (its title, as their app showed it)."""
    kind = str(content.get("type", ""))
    chosen = _inner(content, kind)
    if kind == "button_reply":
        return _str(chosen.get("title")) or _str(chosen.get("id")) or "[interactive]"
    if kind == "list_reply":
        title = _str(chosen.get("title")) or _str(chosen.get("id")) or "[interactive]"
        return _lines(title, _str(chosen.get("description")))
    if kind == "nfm_reply":  # a WhatsApp Flow's answer
        return _lines(_str(chosen.get("body")), _str(chosen.get("response_json")))
    return f"[{kind or 'interactive'}]"


def _contact(contact: dict[str, Any]) -> str:
    name = _inner(contact, "name")
    parts: list[str | None] = [_str(name.get("formatted_name")) or " ".join(
        p for p in (_str(name.get("last_name")), _str(name.get("first_name"))) if p)]
    parts += [_str(p.get("phone")) for p in _dicts(contact.get("phones"))]
    parts += [_str(e.get("email")) for e in _dicts(contact.get("emails"))]
    parts.append(_str(_inner(contact, "org").get("company")))
    return " / ".join(p for p in parts if p)


def _order(content: dict[str, Any]) -> str:
    items = []
    for item in _dicts(content.get("product_items")):
        price = item.get("item_price")
        items.append(" ".join(str(p) for p in (
            item.get("product_retailer_id"), f"×{item.get('quantity')}" if item.get("quantity") else None,
            price, item.get("currency") if price is not None else None) if p not in (None, "")))
    return _lines(PLACEHOLDERS["order"], _str(content.get("text")), *items)


def messenger_attachments_text(attachments: list[dict[str, Any]]) -> str:
    """Messenger and Instagram attachments: placeholders, a shared location with its map link,
    a shared link with its title."""
    parts: list[str] = []
    for attachment in attachments:
        kind = str(attachment.get("type"))
        payload = _inner(attachment, "payload")
        if kind == "location":
            point = _inner(payload, "coordinates")
            parts.append(location_text(_str(attachment.get("title")) or _str(payload.get("title")),
                                       None, point.get("lat"), point.get("long"), payload.get("url")))
        elif kind == "fallback":
            parts.append(_lines(PLACEHOLDERS["fallback"], _str(payload.get("title"))
                                or _str(attachment.get("title")), _str(payload.get("url"))))
        else:
            parts.append(PLACEHOLDERS.get(kind, f"[{kind}]"))
    joiner = "\n" if any("\n" in p for p in parts) else " "  # "[画像] [画像]" stays on one line
    return joiner.join(parts) or "[メッセージ]"
