"""Secrets the server must read back, sealed at rest: authenticator apps' TOTP keys.

Whoever holds a user's TOTP key can make their sign-in codes, so a copy of the database (a
backup, a dump handed over for support) must not carry it readable. Each key is encrypted with
Fernet (AES-128-CBC and HMAC-SHA256) under a key derived from ``HELPDESK_SECRET_KEY`` for this
use alone, and stored as ``v1:`` and the token.

Rotating ``HELPDESK_SECRET_KEY``: list the old value in ``HELPDESK_PREVIOUS_SECRET_KEYS``; keys
sealed under it still open, and each is sealed afresh under the new one at its owner's next
sign-in. A value without the prefix is a key stored before sealing existed: it is read as it is,
and the app seals it when it starts.
"""

import base64
import functools
import logging
from collections.abc import Sequence
from typing import NamedTuple

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from helpdesk.config import Settings

PREFIX = "v1:"
_PURPOSE = b"helpdesk: sealed TOTP keys"
log = logging.getLogger(__name__)


class Opened(NamedTuple):
    """A sealed secret opened: the plain text, and whether it was sealed under the current key
    (if not, it should be sealed again)."""

    plain: str
    current: bool


class Sealer:
    """Seals under the current secret key; opens under it or any previous one."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        self._current = Fernet(_derived(secret_key))
        self._previous = [Fernet(_derived(key)) for key in previous_keys]

    def seal(self, plain: str) -> str:
        return PREFIX + self._current.encrypt(plain.encode()).decode()

    def open(self, stored: str) -> Opened | None:
        """``stored`` opened, or None when no configured key opens it (logged: the secret key
        changed without the old one listed as previous). A value stored before sealing existed
        opens as it is, never as current."""
        if not is_sealed(stored):
            return Opened(stored, current=False)
        token = stored[len(PREFIX):].encode()
        for fernet in (self._current, *self._previous):
            try:
                return Opened(fernet.decrypt(token).decode(), current=fernet is self._current)
            except InvalidToken:
                continue
        log.warning("a sealed TOTP key opens under no configured secret key; "
                    "list the old HELPDESK_SECRET_KEY in HELPDESK_PREVIOUS_SECRET_KEYS")
        return None


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def of(settings: Settings) -> Sealer:
    """The sealer of these settings."""
    return _sealer(settings.secret_key, tuple(settings.previous_secret_keys))


@functools.lru_cache(maxsize=4)
def _sealer(secret_key: str, previous_keys: tuple[str, ...]) -> Sealer:
    return Sealer(secret_key, previous_keys)


def _derived(secret_key: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(secret_key.encode())
    return base64.urlsafe_b64encode(key)
