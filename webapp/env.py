"""Read every Lumen setting from the environment (prefix-free names kept short on purpose)."""

import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DATA = BASE_DIR / "var"  # embedded-default SQLite, media, static and generated keys live here (git-ignored)

env = environ.Env()
# A local `.env` is optional; real deployments set the environment directly.
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Keys shorter than this, or once documented as defaults, are refused in production.
MIN_KEY_LENGTH = 50
DOCUMENTED_DEFAULT_KEYS = frozenset({"lumen-local-development-key-change-me-in-production"})


def local_key(name: str) -> str:
    """Return the random key kept in `var/<name>.key`, generating it (owner-readable only) on first use.

    The development and demo settings use this when the environment names no key, so a checkout never runs with
    a key anyone else knows. Several processes starting at once agree: the file is created exclusively and a
    process that loses the race reads the winner's key.
    """
    path = LOCAL_DATA / f"{name}.key"
    if not path.exists():
        LOCAL_DATA.mkdir(exist_ok=True)
        key = secrets.token_urlsafe(48)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as out:
                out.write(key)
            return key
    key = path.read_text().strip()
    if not key:
        raise ImproperlyConfigured(f"{path} is empty: delete it to generate a new key")
    return key


def strong_key(name: str, value: str) -> str:
    """Return value if it can guard production, else raise naming the setting and the problem."""
    if value in DOCUMENTED_DEFAULT_KEYS:
        raise ImproperlyConfigured(f"{name} is the documented development default; set a random key")
    if len(value) < MIN_KEY_LENGTH or len(set(value)) < 10:
        raise ImproperlyConfigured(
            f"{name} is too weak ({len(value)} characters); use at least {MIN_KEY_LENGTH} random characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
        )
    return value
