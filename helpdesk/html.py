"""Customer HTML made inert, the one way: when it is stored and again when a page shows it."""

import nh3


def inert(html: str) -> str:
    """No scripts, handlers, or remote loads (images need consent: only ``cid:`` ones stay)."""
    return nh3.clean(
        html,
        url_schemes={"http", "https", "mailto", "cid", "tel"},
        link_rel="noopener noreferrer nofollow",
        attribute_filter=_block_remote_images,
    )


def _block_remote_images(tag: str, attribute: str, value: str) -> str | None:
    if tag == "img" and attribute == "src" and not value.startswith("cid:"):
        return None
    return value
