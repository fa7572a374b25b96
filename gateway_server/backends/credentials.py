"""The caller's secrets as templates read them: ``{{ secrets.NAME }}`` (docs/credentials.md).

A call's ``secrets`` is a read-only view that looks ``NAME`` up, in order, among the secrets of
the caller's API key, of the key's owner (a user), and of the document's tenant (the fallback an
admin sets). It reads the store only when a template names a secret, keeps what it read — still
sealed — for ``secrets_cache_ttl`` seconds per owner in this process, and decrypts one value only
when a template uses it. Token subjects of an external OAuth issuer are not mcpgw accounts: they
get the tenant's fallback only.

Each value a call decrypts is remembered on its view, so :func:`scrub` can mask it in that
call's error texts, and in :mod:`mcpgw_sdk.redact`, so no gateway log line shows it.

The gateway calls :func:`configure` with its store at start; without it every lookup finds nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from mcpgw_sdk.errors import McpgwError, SecretError
from mcpgw_sdk.redact import MASK, remember_secret
from mcpgw_sdk.settings import resolve

__all__ = ["CallerSecrets", "MissingSecret", "configure", "missing_text", "scrub", "view"]

Reader = Callable[..., dict[str, Any]]
_reader: Reader | None = None
_ttl = 0.0  # the configuring gateway's secrets_cache_ttl
_cache: dict[tuple[str, Any], tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()
_CACHE_MAX = 10000
_READER_ARGS = {"user": "user", "key": "key_id", "tenant": "tenant"}


class MissingSecret(McpgwError):
    """Raised inside a render when a template reads a secret the caller has not set.

    Deliberately not a ``LookupError``: Jinja would turn that into an empty value.
    """


def configure(reader: Reader | None, *, cache_ttl: float | None = None) -> None:
    """Read sealed secrets with ``reader`` (``store.sealed_secrets``, made safe for the hub); ``None`` turns them off.

    ``cache_ttl`` is the ``secrets_cache_ttl`` setting (``None``: resolved now).
    """
    global _reader, _ttl
    ttl = float(resolve().secrets_cache_ttl if cache_ttl is None else cache_ttl)
    with _lock:
        _reader = reader
        _ttl = ttl
        _cache.clear()


def _owner_secrets(kind: str, ident: Any) -> dict[str, Any]:
    """One owner's sealed secrets, from this process's cache when fresh enough."""
    reader = _reader
    if reader is None or ident is None:
        return {}
    now = time.monotonic()
    cache_key = (kind, ident)
    with _lock:
        hit = _cache.get(cache_key)
    if hit is not None and hit[0] > now:
        return hit[1]
    try:
        found = reader(**{_READER_ARGS[kind]: ident})
    except McpgwError:
        if hit is not None:  # the database is away: the last read still serves
            return hit[1]
        raise
    ttl = _ttl
    if ttl > 0:
        with _lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[cache_key] = (now + ttl, found)
    return found


class CallerSecrets:
    """The ``secrets`` of one call's templates: ``secrets.NAME`` / ``secrets["NAME"]`` and ``"NAME" in secrets``.

    It cannot be listed or iterated, and has no public attributes (every name is a secret's).
    Reading an unset secret raises :class:`MissingSecret` (``lenient``: renders empty instead,
    for connections made without a caller, such as an upstream's shared session).
    """

    __slots__ = ("_sources", "_tenant", "_lenient", "_who", "_values", "_missing")

    def __init__(self, sources: list[tuple[str, Any]], *, tenant: str | None, who: str, lenient: bool = False):
        self._sources = sources
        self._tenant = tenant
        self._who = who
        self._lenient = lenient
        self._values: dict[str, str] = {}
        self._missing: list[str] = []

    def _find(self, name: str) -> Any:
        for kind, ident in self._sources:
            sealed = _owner_secrets(kind, ident).get(name)
            if sealed is not None:
                return sealed
        return None

    def __getitem__(self, name: Any) -> str:
        if not isinstance(name, str):
            raise MissingSecret(f"secrets are read by name: secrets.NAME or secrets[\"NAME\"], not {type(name).__name__}")
        value = self._values.get(name)
        if value is not None:
            return value
        sealed = self._find(name)
        if sealed is None:
            if self._lenient:
                return ""
            if name not in self._missing:
                self._missing.append(name)
            raise MissingSecret(_missing_message(name, self._who, self._tenant))
        try:
            value = sealed.open()
        except SecretError as exc:
            raise MissingSecret(str(exc)) from None
        remember_secret(value)
        self._values[name] = value
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (name in self._values or self._find(name) is not None)

    def __iter__(self):
        raise TypeError("secrets cannot be listed; read one by name: secrets.NAME")

    def __len__(self) -> int:
        raise TypeError("secrets cannot be counted; read one by name: secrets.NAME")

    def __str__(self) -> str:
        return "<secrets>"

    __repr__ = __str__


def _missing_message(name: str, who: str, tenant: str | None) -> str:
    return (f"secret {name!r} is not set for {who}: set it in the console under \"My credentials\", with "
            f"PUT /api/v1/me/secrets/{name} (or /api/v1/keys/<id>/secrets/{name} for an API key), or in Python "
            f"with gw.set_secret({name!r}, value)"
            + (f"; an admin may set a fallback for tenant {tenant!r} (PUT /api/v1/tenants/{tenant}/secrets/{name})"
               if tenant else ""))


def view(ctx: Any, tenant: str | None) -> CallerSecrets:
    """The ``secrets`` of this call's templates (one per call and tenant, kept on ``ctx``); ``ctx`` None: lenient."""
    if ctx is None:
        return CallerSecrets([("tenant", tenant)], tenant=tenant, who="a connection without a caller", lenient=True)
    current = getattr(ctx, "secrets", None)
    if isinstance(current, CallerSecrets) and current._tenant == tenant:
        return current
    key_id, user = getattr(ctx, "key_id", None), getattr(ctx, "user", None)
    if key_id is not None:
        sources = [("key", key_id), ("user", user), ("tenant", tenant)]
        who = f"API key {key_id} of user {user!r}"
    else:
        sources = [("tenant", tenant)]
        who = "this caller (only API-key callers have their own secrets)"
    made = CallerSecrets(sources, tenant=tenant, who=who)
    if current is not None and isinstance(current, CallerSecrets):
        made._values.update(current._values)  # what was decrypted earlier in the call stays scrubbed
    try:
        ctx.secrets = made
    except AttributeError:
        pass
    return made


def missing_text(source: Any) -> str | None:
    """The message for the first secret a render missed (``source``: a :class:`CallerSecrets` or a call context)."""
    secrets = source if isinstance(source, CallerSecrets) else getattr(source, "secrets", None)
    if isinstance(secrets, CallerSecrets) and secrets._missing:
        return _missing_message(secrets._missing[0], secrets._who, secrets._tenant)
    return None


def _mask(text: Any, values: list[str]) -> Any:
    if not isinstance(text, str):
        return text
    for value in values:
        text = text.replace(value, MASK)
    return text


def scrub(result: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """``result`` with every secret value this call decrypted masked, when it is an error (its text may quote them)."""
    secrets = getattr(ctx, "secrets", None)
    if not isinstance(secrets, CallerSecrets) or not secrets._values or not isinstance(result, dict) \
            or not result.get("isError"):
        return result
    values = sorted((v for v in secrets._values.values() if len(v) >= 4), key=len, reverse=True)
    content = [{**item, "text": _mask(item.get("text"), values)} if isinstance(item, dict) else item
               for item in result.get("content") or []]
    return {**result, "content": content}
