"""Secrets of external servers (a DICOMweb password, a Label Studio token), encrypted at rest.

Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`) under a key derived from settings.CREDENTIALS_KEY, which
is separate from SECRET_KEY and PSEUDONYM_KEY. A value encrypted under another key cannot be read back: the error
says so, and the lead enters the secret again.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


class CredentialUnreadable(Exception):
    """A stored secret was encrypted under another LUMEN_CREDENTIALS_KEY (or was altered)."""


def _fernet() -> Fernet:
    digest = hashlib.sha256(f"lumen-credentials:{settings.CREDENTIALS_KEY}".encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def credential_encrypt(secret: str) -> str:
    """Return `secret` encrypted for storage ("" stays "": no secret)."""
    if not secret:
        return ""
    return _fernet().encrypt(secret.encode()).decode("ascii")


def credential_decrypt(stored: str) -> str:
    """Return the secret `credential_encrypt` stored; raise CredentialUnreadable if the key has changed."""
    if not stored:
        return ""
    try:
        return _fernet().decrypt(stored.encode("ascii")).decode()
    except InvalidToken as error:
        raise CredentialUnreadable(
            "the stored secret cannot be decrypted with this server's LUMEN_CREDENTIALS_KEY; enter it again"
        ) from error
