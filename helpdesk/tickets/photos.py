"""Which attachments are photos a browser may show inline in the conversation."""


# The leading bytes of the raster formats every browser shows, and the type they are served as.
_PHOTO_SIGNATURES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"),
                     (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


def photo_type(data: bytes) -> str | None:
    """The image type ``data`` really is, when it is a photo a browser may show inline."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((kind for signature, kind in _PHOTO_SIGNATURES if data.startswith(signature)), None)


def is_photo(content_type: str) -> bool:
    """Whether an attachment says it is a photo (the preview checks its bytes)."""
    return content_type in ("image/jpeg", "image/png", "image/gif", "image/webp")
