"""Sealed MRTR request state: what the gateway hands a 2026-07-28 client as ``requestState``.

A modern ``tools/call``, ``prompts/get`` or ``resources/read`` that needs input answers
``resultType: "input_required"`` with a ``requestState`` the client must echo on its retry. That
string comes back from the client, so it is attacker-controlled: the gateway seals what it needs
(the upstream's own state and the upstream's name) together with what the state is for (the
principal, the prefix, the method, a digest of the request's salient parameters) and an expiry.
:meth:`Sealer.open` refuses anything else with -32602 (``requestState …: why``).

Sealing is AES-256-GCM (``cryptography``) when installed, else HMAC-SHA256 (integrity only). The
key comes from the ``state_secret`` setting (``MCPGW_STATE_SECRET``), else from a secret generated
once and kept in the store's key/value table, as the API keeps its JWT secret, so every worker and
replica opens what any of them sealed. IO-free except :func:`load_secret`; the secret is never logged.

>>> sealer = Sealer(b"k" * 32, ttl=60)
>>> token = sealer.seal(principal="", prefix="/p", method="tools/call",
...                     params={"name": "t", "arguments": {"a": 1}}, upstream="up", inner="s1")
>>> sealer.open(token, principal="", prefix="/p", method="tools/call",
...             params={"name": "t", "arguments": {"a": 1}, "inputResponses": {}}).inner
's1'
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

from mcpgw_sdk.settings import resolve

from .jsonrpc import INVALID_PARAMS, JsonRpcError

try:  # PyJWT[crypto] brings it in; without it the state is signed, not encrypted
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError:  # pragma: no cover - depends on the installation
    AESGCM = None  # type: ignore[assignment,misc]
    InvalidTag = Exception  # type: ignore[assignment,misc]

log = logging.getLogger("mcpgw.mrtr")

#: The name of the generated secret in the store's key/value table.
SECRET_NAME = "state_secret"
#: Methods that may answer ``input_required`` (and whose retries carry ``requestState``).
MRTR_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
_AEAD_TAG = "g1."  # AES-GCM: nonce + ciphertext
_HMAC_TAG = "h1."  # HMAC-SHA256: payload + signature
_AAD = b"mcpgw requestState v1"


def principal_id(principal: Any) -> str:
    """Who a state belongs to: ``key:<id>``, ``sub:<tenant>:<user>``, or ``""`` (anonymous)."""
    if principal is None:
        return ""
    if getattr(principal, "key_id", None) is not None:
        return f"key:{principal.key_id}"
    return f"sub:{getattr(principal, 'tenant', '')}:{getattr(principal, 'user', '')}"


def params_digest(method: str, params: dict[str, Any]) -> str:
    """A digest of what identifies the request: the tool or prompt name and arguments, or the URI.

    ``_meta``, ``inputResponses`` and ``requestState`` (and anything else) are left out; absent
    arguments count as ``{}``.

    >>> params_digest("tools/call", {"name": "t"}) == params_digest("tools/call", {"name": "t", "arguments": {},
    ...                                                                             "_meta": {"x": 1}})
    True
    """
    if method == "resources/read":
        salient: Any = {"uri": params.get("uri")}
    else:
        salient = {"name": params.get("name"), "arguments": params.get("arguments") or {}}
    text = json.dumps([method, salient], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def refused(why: str) -> JsonRpcError:
    """The -32602 error a refused ``requestState`` gets."""
    return JsonRpcError(INVALID_PARAMS, f"requestState refused: {why}")


@dataclass(frozen=True)
class Opened:
    """What an opened state holds: the upstream it names and that upstream's own state (or ``None``)."""

    upstream: str | None
    inner: str | None


class Sealer:
    """Seals and opens ``requestState`` with one key; ``ttl`` seconds is how long a state is valid."""

    def __init__(self, key: bytes, *, ttl: float = 600.0, aead: bool | None = None):
        if len(key) < 16:
            raise ValueError("the requestState key must be at least 16 bytes")
        self._key = hashlib.sha256(b"mcpgw requestState key\0" + key).digest()
        self.ttl = float(ttl)
        self.aead = (AESGCM is not None) if aead is None else (aead and AESGCM is not None)

    def __repr__(self) -> str:  # never show the key
        return f"<Sealer {'AES-GCM' if self.aead else 'HMAC-SHA256'} ttl={self.ttl:g}s>"

    def seal(self, *, principal: str, prefix: str, method: str, params: dict[str, Any], upstream: str | None,
             inner: str | None, now: float | None = None) -> str:
        """A ``requestState`` binding all of this, valid for :attr:`ttl` seconds from ``now``."""
        now = time.time() if now is None else now
        payload = {"p": principal, "x": prefix, "m": method, "h": params_digest(method, params),
                   "e": round(now + self.ttl, 3), "u": upstream, "s": inner}
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        if self.aead:
            nonce = os.urandom(12)
            return _AEAD_TAG + _b64(nonce + AESGCM(self._key).encrypt(nonce, raw, _AAD))
        mac = hmac.new(self._key, _AAD + raw, hashlib.sha256).digest()
        return _HMAC_TAG + _b64(raw) + "." + _b64(mac)

    def _unseal(self, token: Any) -> dict[str, Any]:
        if not isinstance(token, str) or not token:
            raise refused("it must be the non-empty string the gateway sent")
        try:
            if token.startswith(_AEAD_TAG) and self.aead:
                blob = _unb64(token[len(_AEAD_TAG):])
                if len(blob) < 12 + 16 or token[len(_AEAD_TAG):] != _b64(blob):
                    raise ValueError("short or non-canonical")
                raw = AESGCM(self._key).decrypt(blob[:12], blob[12:], _AAD)
            elif token.startswith(_HMAC_TAG) and not self.aead:
                body, _, mac = token[len(_HMAC_TAG):].partition(".")
                raw = _unb64(body)
                if body != _b64(raw) or mac != _b64(_unb64(mac)):
                    raise ValueError("non-canonical")
                if not hmac.compare_digest(_unb64(mac), hmac.new(self._key, _AAD + raw, hashlib.sha256).digest()):
                    raise ValueError("bad signature")
            else:
                raise ValueError("unknown format")
            payload = json.loads(raw)
            if not isinstance(payload, dict):
                raise ValueError("not an object")
            return payload
        except (ValueError, InvalidTag, binascii.Error, UnicodeDecodeError):
            raise refused("it was not sealed by this gateway or was altered") from None

    def open(self, token: Any, *, principal: str, prefix: str, method: str, params: dict[str, Any],
             now: float | None = None) -> Opened:
        """Check ``token`` against the request it comes back with; raise -32602 saying why it is refused."""
        payload = self._unseal(token)
        now = time.time() if now is None else now
        expiry = payload.get("e")
        if not isinstance(expiry, (int, float)) or now > expiry:
            raise refused("it has expired (sealed states are valid for "
                          f"{self.ttl:g}s; start the request again without requestState)")
        if payload.get("p") != principal:
            raise refused("it was issued to another caller")
        if payload.get("x") != prefix:
            raise refused("it was issued for another prefix")
        if payload.get("m") != method:
            raise refused(f"it was issued for {payload.get('m')}, not {method}")
        if payload.get("h") != params_digest(method, params):
            what = "URI" if method == "resources/read" else "name or arguments"
            raise refused(f"it was issued for another request (the {what} differ)")
        upstream, inner = payload.get("u"), payload.get("s")
        return Opened(upstream if isinstance(upstream, str) else None, inner if isinstance(inner, str) else None)


# -- the gateway's sealer --------------------------------------------------------------------------

_lock = threading.Lock()
_current: Sealer | None = None


def install(sealer: Sealer | None) -> None:
    """Make ``sealer`` the one the MCP core uses (``None``: forget it)."""
    global _current
    with _lock:
        _current = sealer


def current() -> Sealer:
    """The installed sealer; without one (a core used on its own), a per-process key, with a warning."""
    global _current
    sealer = _current
    if sealer is not None:
        return sealer
    with _lock:
        if _current is None:
            log.warning("no requestState key was loaded: states sealed now open in this process only")
            _current = Sealer(secrets.token_bytes(32), ttl=resolve().state_ttl)
        return _current


def load_secret(store: Any, explicit: str | None = None) -> str:
    """The secret sealing ``requestState``: ``explicit``, else ``MCPGW_STATE_SECRET``, else the store's.

    The store's is generated once and kept in its key/value table (first writer wins, as for the
    API's JWT secret), so every worker and replica shares it. A store that cannot keep values (the
    read-only YAML directory) gets a per-process secret, with a warning.
    """
    from ..api.auth import ApiState
    from ..api.auth import load_secret as load

    return load(ApiState.of(store), explicit, setting="state_secret", name=SECRET_NAME,
                warning="no database to keep the requestState secret in: MRTR states open in this process only",
                logger=log)


def install_from(store: Any, *, secret: str | None = None, ttl: float | None = None) -> Sealer:
    """Load the secret (:func:`load_secret`) and install a sealer whose states live ``ttl`` seconds; return it.

    ``secret`` and ``ttl`` are the ``state_secret`` and ``state_ttl`` settings (``None``: resolved now).
    """
    sealer = Sealer(load_secret(store, secret).encode(), ttl=resolve().state_ttl if ttl is None else ttl)
    install(sealer)
    return sealer
