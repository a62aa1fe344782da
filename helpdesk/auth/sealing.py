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

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from helpdesk.config import Settings

PREFIX = "v1:"
_PURPOSE = b"helpdesk: sealed TOTP keys"
log = logging.getLogger(__name__)


class Sealer:
    """Seals under the current secret key; opens under it or any previous one."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        self._current = Fernet(_derived(secret_key))
        self._any = MultiFernet([self._current, *(Fernet(_derived(key)) for key in previous_keys)])

    def seal(self, plain: str) -> str:
        return PREFIX + self._current.encrypt(plain.encode()).decode()

    def open(self, stored: str) -> str | None:
        """The plain secret, or None when no configured key opens it (logged: the secret key
        changed without the old one listed as previous)."""
        if not is_sealed(stored):
            return stored
        try:
            return self._any.decrypt(stored[len(PREFIX):].encode()).decode()
        except InvalidToken:
            log.warning("a sealed TOTP key opens under no configured secret key; "
                        "list the old HELPDESK_SECRET_KEY in HELPDESK_PREVIOUS_SECRET_KEYS")
            return None

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` is sealed under the current secret key (nothing to re-seal)."""
        if not is_sealed(stored):
            return False
        try:
            self._current.decrypt(stored[len(PREFIX):].encode())
        except InvalidToken:
            return False
        return True


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
