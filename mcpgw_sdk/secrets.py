"""Per-user secrets at rest: AES-256-GCM under the operator's ``secrets_key``.

A secret belongs to one owner — a user, an API key (service accounts), or a tenant
(the fallback an admin sets for a tenant's documents) — and has a name (the one name
rule of :mod:`mcpgw_sdk.names`). Its value is sealed before it reaches the database
and opened only by the gateway, when a template reads ``{{ secrets.NAME }}``.

Sealed text is ``v1.<key id>.<base64(nonce + ciphertext + tag)>``. The associated data
binds the owner and the name, so a sealed value copied to another row (another user,
another name) does not open. The key comes from the ``secrets_key`` setting
(``MCPGW_SECRETS_KEY``, at least 32 characters, e.g. ``openssl rand -base64 32``),
stretched with HKDF-SHA256; it is never stored beside the database.

>>> key = "k" * 32
>>> sealed = seal("user:1", "GITHUB_TOKEN", "ghp_example", key=key)
>>> open_sealed("user:1", "GITHUB_TOKEN", sealed, key=key)
'ghp_example'
>>> open_sealed("user:2", "GITHUB_TOKEN", sealed, key=key)
Traceback (most recent call last):
...
mcpgw_sdk.errors.SecretError: secret 'GITHUB_TOKEN' cannot be opened: it was altered or belongs to another owner or name
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError, SecretError
from .names import check_name
from .settings import resolve

__all__ = ["MAX_VALUE_BYTES", "OWNER_KINDS", "Sealed", "SecretError", "check_secret", "missing_key_message",
           "open_sealed", "require_key", "seal"]

#: Largest secret value, in bytes of UTF-8.
MAX_VALUE_BYTES = 8 * 1024
#: Who may own a secret: a user, an API key, or a tenant (the fallback of its documents).
OWNER_KINDS = ("user", "key", "tenant")
_VERSION = "v1"
_INFO = b"mcpgw secrets v1"
_derived: dict[str, tuple[bytes, str]] = {}
_lock = threading.Lock()


def missing_key_message() -> str:
    """What to do when no ``secrets_key`` is set."""
    return ("per-user secrets need an encryption key: set MCPGW_SECRETS_KEY (the secrets_key setting, at least "
            "32 characters, e.g. `openssl rand -base64 32`) for the API, console, CLI and gateway alike")


def _key(raw: str | None) -> tuple[bytes, str]:
    """(AES key, key id) derived from the ``secrets_key`` text."""
    text = (raw if raw is not None else resolve().secrets_key) or ""
    if not text:
        raise SecretError(missing_key_message())
    if len(text) < 32:
        raise SecretError("MCPGW_SECRETS_KEY (the secrets_key setting): must be at least 32 characters "
                          "(e.g. `openssl rand -base64 32`)")
    found = _derived.get(text)
    if found is None:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(text.encode("utf-8"))
        kid = hashlib.sha256(b"mcpgw secrets key id\0" + key).hexdigest()[:12]
        with _lock:
            _derived[text] = found = (key, kid)
    return found


def require_key() -> None:
    """Raise SecretError (naming ``MCPGW_SECRETS_KEY``) unless a usable ``secrets_key`` is set."""
    _key(None)


def _aad(owner: str, name: str) -> bytes:
    return f"mcpgw-secret/{_VERSION}\0{owner}\0{name}".encode()


def check_secret(name: Any, value: Any) -> tuple[str, str]:
    """``(name, value)`` when both are acceptable, else ConfigError naming what is wrong (never the value)."""
    check_name("name", name)
    if not isinstance(value, str):
        raise ConfigError(f"value: must be a string, got {type(value).__name__}")
    if not value:
        raise ConfigError("value: must not be empty")
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise ConfigError("value: must not contain NUL or lone surrogates")
    size = len(value.encode("utf-8"))
    if size > MAX_VALUE_BYTES:
        raise ConfigError(f"value: must be at most {MAX_VALUE_BYTES} bytes (got {size})")
    return name, value


def seal(owner: str, name: str, value: str, *, key: str | None = None) -> str:
    """Encrypt ``value`` for ``owner`` (``user:3``, ``key:7``, ``tenant:1``) and ``name``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes, kid = _key(key)
    nonce = os.urandom(12)
    data = AESGCM(aes).encrypt(nonce, value.encode("utf-8"), _aad(owner, name))
    return f"{_VERSION}.{kid}.{base64.b64encode(nonce + data).decode('ascii')}"


def open_sealed(owner: str, name: str, sealed: str, *, key: str | None = None) -> str:
    """Decrypt what :func:`seal` made; SecretError saying why when it cannot (never garbage)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes, kid = _key(key)
    version, _, rest = str(sealed).partition(".")
    stored_kid, _, text = rest.partition(".")
    if version != _VERSION or not text:
        raise SecretError(f"secret {name!r} cannot be opened: its stored form is not one this version reads")
    if stored_kid != kid:
        raise SecretError(f"secret {name!r} cannot be opened: it was sealed with another secrets_key "
                          "(MCPGW_SECRETS_KEY differs from the one in use when it was set)")
    try:
        raw = base64.b64decode(text, validate=True)
        plain = AESGCM(aes).decrypt(raw[:12], raw[12:], _aad(owner, name))
        return plain.decode("utf-8")
    except (InvalidTag, ValueError, binascii.Error, UnicodeDecodeError):
        raise SecretError(f"secret {name!r} cannot be opened: it was altered or belongs to another owner or "
                          "name") from None


@dataclass(frozen=True)
class Sealed:
    """A stored secret as the gateway reads it: still encrypted; :meth:`open` decrypts it.

    ``owner`` is ``kind:id`` (the associated data), ``data`` the sealed text (never shown in ``repr``).
    """

    owner: str
    name: str
    data: str = field(repr=False)

    def open(self, *, key: str | None = None) -> str:
        """The plain value (SecretError when the key is wrong or the data altered)."""
        return open_sealed(self.owner, self.name, self.data, key=key)
