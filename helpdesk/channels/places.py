"""A place a customer shared, as operators read it: its name, address and a map link."""

from urllib.parse import quote

LABEL = "[位置情報]"


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def map_link(latitude: object, longitude: object) -> str | None:
    """A map search link for a point (None unless both are numbers)."""
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (latitude, longitude)):
        return None
    return f"https://www.google.com/maps/search/?api=1&query={quote(f'{latitude},{longitude}')}"


def location_text(name: object, address: object, latitude: object, longitude: object,
                  url: object = None) -> str:
    """A shared place: its name, address and a map link (and the place's own page if any)."""
    parts = (LABEL, _str(name), _str(address), map_link(latitude, longitude), _str(url))
    return "\n".join(p for p in parts if p)
