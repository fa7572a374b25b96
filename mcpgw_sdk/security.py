"""Password and API-key hashing.

Passwords: argon2id (argon2-cffi), salted and slow on purpose. API keys are
high-entropy secrets (``mcpgw_`` + 32 random bytes), so one SHA-256 is enough
and lets the gateway find a key by its hash with one indexed lookup.

>>> secret = new_key_secret(); secret.startswith("mcpgw_")
True
>>> verify_password(hash_password("s3cret"), "s3cret")
True
"""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

KEY_PREFIX = "mcpgw_"
#: How many leading characters of a secret are kept in clear to recognise a key in lists.
SHOWN_CHARS = 8

# OWASP's argon2id baseline (19 MiB, 2 passes, 1 lane): sound for login passwords, and cheap enough
# that a 2-core gateway host is not starved by a burst of logins (argon2-cffi's default takes 64 MiB).
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against unknown user names so a miss costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; ``None`` hashes still cost a full verification."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def new_key_secret() -> str:
    """A new API-key secret: ``mcpgw_`` followed by 43 URL-safe characters."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The SHA-256 hex digest of an API-key secret (what the database stores)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def shown_prefix(secret: str) -> str:
    """The first characters of a secret, stored in clear so people can tell keys apart."""
    return secret[:SHOWN_CHARS]
