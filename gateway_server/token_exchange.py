"""OAuth 2.0 Token Exchange (RFC 8693) for backends of OAuth-protected routers.

A REST server (``servers[]``) or an HTTP upstream (``mcpServers[]``) with a
``tokenExchange`` block never sees the caller's bearer token: the gateway trades
it at the block's ``tokenEndpoint`` for a token meant for that backend and sends
that one instead (``docs/token-exchange.md``). Exchanged tokens are cached per
(subject token, endpoint, client, audience, resource, scope) until they expire,
less a skew; failures are not cached. Concurrent identical exchanges share one
request. Tokens never appear in logs or errors: the cache is keyed by a digest,
and an authorization server's error text is redacted before it is shown.

>>> TokenExchange({"tokenEndpoint": "https://as.example/token"}, server="api").header_name
'Authorization'
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from typing import Any
from urllib.parse import quote, urlencode

from mcpgw_sdk.config_model import TokenExchange as Block
from mcpgw_sdk.config_model import default
from mcpgw_sdk.errors import McpgwError
from mcpgw_sdk.redact import redact_text, redact_url

log = logging.getLogger("mcpgw.token_exchange")

__all__ = ["GRANT_TYPE", "TOKEN_TYPE_ACCESS", "ExchangeFailed", "TokenCache", "TokenExchange", "default_cache",
           "without_credentials"]

GRANT_TYPE = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_ACCESS = "urn:ietf:params:oauth:token-type:access_token"
#: Bytes of a token endpoint's answer read at most (a token response is small).
MAX_RESPONSE_BYTES = 64 * 1024
#: Seconds an exchange may take when the block sets no ``timeout`` (and the call's deadline allows more).
DEFAULT_TIMEOUT = default(Block, "timeout")
#: A token without ``expires_in`` is reused for this many seconds at most.
DEFAULT_LIFETIME = 60.0
#: An exchanged token is dropped this long before it expires (at most; a quarter of a short lifetime).
SKEW = 30.0
_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_HEADER_VALUE_BAD = re.compile(r"[\x00-\x1f\x7f]")


class ExchangeFailed(McpgwError, PermissionError):
    """Raised when a token cannot be exchanged: no OAuth caller, the endpoint refused, failed or was unreachable.

    The message names the server and the reason (the authorization server's ``error`` and
    ``error_description`` when it gave them), never a token or a secret.
    """


class TokenCache:
    """Exchanged tokens by key digest until they expire; the least recently used go first above ``max_entries``.

    >>> cache = TokenCache(max_entries=2)
    >>> cache.put("k", "tok", 60.0); cache.get("k")
    'tok'
    """

    def __init__(self, *, max_entries: int = 1024):
        self.max_entries = max_entries
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._inflight: dict[str, _Flight] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> str | None:
        """The live token under ``key``, else ``None`` (an expired one is dropped)."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is None:
                return None
            if hit[0] <= now:
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key: str, token: str, lifetime: float) -> None:
        """Keep ``token`` under ``key`` for ``lifetime`` seconds (nothing when it is not positive)."""
        if lifetime <= 0:
            return
        with self._lock:
            self._items[key] = (time.monotonic() + lifetime, token)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        """Forget every token."""
        with self._lock:
            self._items.clear()

    def fetch(self, key: str, exchange: Any, deadline: float) -> str:
        """The cached token, else the one ``exchange()`` returns as ``(token, lifetime)``, fetched once for all.

        Callers that find the same exchange under way wait for it (until ``deadline``, then
        :class:`TimeoutError`) and share its token, or its failure: a failure is never cached,
        so the next call tries again.
        """
        token = self.get(key)
        if token is not None:
            return token
        with self._lock:
            flight = self._inflight.get(key)
            leader = flight is None
            if leader:
                flight = self._inflight[key] = _Flight()
        if not leader:
            if not flight.done.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError("the same exchange did not finish before the call's deadline")
            if flight.error is not None:
                raise flight.error
            return flight.token
        try:
            flight.token, lifetime = exchange()
            self.put(key, flight.token, lifetime)
            return flight.token
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                self._inflight.pop(key, None)
            flight.done.set()


class _Flight:
    """One exchange under way: what its waiters get when it ends."""

    __slots__ = ("done", "error", "token")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.token = ""
        self.error: BaseException | None = None


_default_cache: TokenCache | None = None
_default_lock = threading.Lock()


def default_cache() -> TokenCache:
    """The process-wide cache: it outlives config snapshots, so a reload does not cost an exchange."""
    global _default_cache
    if _default_cache is None:
        with _default_lock:
            if _default_cache is None:
                _default_cache = TokenCache()
    return _default_cache


def without_credentials(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` (lower-case names) without the caller's gateway credential (``Authorization``, ``X-API-Key``).

    A server with ``tokenExchange`` renders its templates and forwards headers from these, so the
    caller's own token cannot reach it whatever the router or the templates say.

    >>> without_credentials({"authorization": "Bearer t", "accept": "*/*"})
    {'accept': '*/*'}
    """
    from .mcp_auth import CREDENTIAL_HEADERS

    return {k: v for k, v in headers.items() if k.lower() not in CREDENTIAL_HEADERS}


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _clean(text: Any, secrets: tuple[str, ...]) -> str:
    """An authorization server's text fit for an error: one printable line, short, no token or secret in it."""
    return redact_text(_PRINTABLE.sub(" ", str(text)), secrets)[:300]


class TokenExchange:
    """One server's ``tokenExchange`` block: exchange a caller's token and build the header to send.

    ``spec`` is the validated block, a :class:`~mcpgw_sdk.config_model.TokenExchange` or its dict (``tokenEndpoint``, ``clientId``, ``clientSecret`` — a template,
    e.g. ``{{ env('AS_SECRET') }}`` — ``audience``, ``resource``, ``scope``, ``header``, ``scheme``,
    ``timeout``). The endpoint's authority is written in the document, so it may be loopback or
    private; redirects are not followed.
    """

    def __init__(self, spec: Block | dict[str, Any], *, server: str, client: Any = None,
                 cache: TokenCache | None = None):
        from mcpgw_sdk.templates import compile_template

        from .backends.guard import url_authority

        block = spec if isinstance(spec, Block) else Block.from_dict(spec)
        self.server = server
        self.endpoint = str(block.token_endpoint)
        self.client_id = block.client_id or None
        secret = block.client_secret
        self._secret = compile_template(str(secret), field=f"{server}.tokenExchange.clientSecret") \
            if secret not in (None, "") else None
        self.audience = _strings(block.audience)
        self.resource = _strings(block.resource)
        scope = block.scope
        self.scope = " ".join(scope.split() if isinstance(scope, str) else _strings(scope))
        self.header_name = str(block.header or default(Block, "header"))
        self.scheme = str(block.scheme)
        self.timeout = float(block.timeout or DEFAULT_TIMEOUT)
        own = url_authority(self.endpoint)
        self.literal_hosts = frozenset({own} if own else ())
        self._client = client
        self._cache = cache

    def __repr__(self) -> str:
        return f"<TokenExchange {self.server} at {redact_url(self.endpoint)}>"

    @property
    def cache(self) -> TokenCache:
        """Where exchanged tokens are kept (the process-wide :func:`default_cache` unless one was given)."""
        return self._cache or default_cache()

    def _fail(self, reason: str) -> ExchangeFailed:
        return ExchangeFailed(f"token exchange for server {self.server} at {redact_url(self.endpoint)} failed: "
                              f"{reason}")

    def header(self, subject_token: str | None, *, deadline: float | None = None) -> tuple[str, str]:
        """``(header name, value)`` carrying the backend token for the caller of ``subject_token``.

        Raises :class:`ExchangeFailed` when there is no caller token (the router does not check
        OAuth tokens) or the exchange fails.
        """
        token = self.token(subject_token, deadline=deadline)
        return self.header_name, f"{self.scheme} {token}" if self.scheme else token

    def token(self, subject_token: str | None, *, deadline: float | None = None) -> str:
        """The exchanged token for ``subject_token`` (cached until it expires); see :meth:`header`."""
        if not subject_token:
            raise ExchangeFailed(f"server {self.server}: token exchange needs an OAuth-authenticated caller "
                                 "(serve it on a router with auth.mode oauth2)")
        try:
            secret = self._secret.render({}) if self._secret is not None else None
        except Exception as exc:  # noqa: BLE001 - env() not allowed, a template error: the exchange's failure
            raise self._fail(f"cannot render clientSecret: {exc}") from None
        parts = [hashlib.sha256(subject_token.encode()).hexdigest(), self.endpoint, self.client_id or "",
                 hashlib.sha256((secret or "").encode()).hexdigest(), self.audience, self.resource, self.scope]
        key = hashlib.sha256(json.dumps(parts).encode()).hexdigest()
        end = time.monotonic() + self.timeout
        if deadline is not None:
            end = min(end, deadline)
        try:
            return self.cache.fetch(key, lambda: self._exchange(subject_token, secret, end), end)
        except TimeoutError:
            raise self._fail(f"no answer within {self.timeout:g} s") from None

    def _exchange(self, subject_token: str, secret: str | None, deadline: float) -> tuple[str, float]:
        from .backends.guard import Refused
        from .backends.http import HttpError, default_client

        form: list[tuple[str, str]] = [("grant_type", GRANT_TYPE), ("subject_token", subject_token),
                                       ("subject_token_type", TOKEN_TYPE_ACCESS),
                                       ("requested_token_type", TOKEN_TYPE_ACCESS)]
        form += [("audience", a) for a in self.audience]
        form += [("resource", r) for r in self.resource]
        if self.scope:
            form.append(("scope", self.scope))
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
        if self.client_id and secret:
            # client_secret_basic: id and secret are form-encoded before Base64 (RFC 6749, section 2.3.1)
            pair = f"{quote(self.client_id, safe='')}:{quote(secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        elif self.client_id:
            form.append(("client_id", self.client_id))  # a public client names itself
        secrets = tuple(s for s in (subject_token, secret) if s)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._fail("no time left before the call's deadline")
        client = self._client or default_client()
        try:
            resp = client.request("POST", self.endpoint, headers=headers, body=urlencode(form).encode("ascii"),
                                  timeout=remaining, max_bytes=MAX_RESPONSE_BYTES, literal_hosts=self.literal_hosts,
                                  max_redirects=0)
        except Refused as exc:
            raise self._fail(_clean(exc, secrets)) from None
        except HttpError as exc:
            raise self._fail(_clean(exc, secrets)) from None
        except OSError as exc:
            raise self._fail(_clean(f"{type(exc).__name__}: {exc}", secrets)) from None
        try:
            answer = resp.json()
        except ValueError:
            answer = None
        if resp.status != 200:
            if isinstance(answer, dict) and isinstance(answer.get("error"), str):
                reason = _clean(answer["error"], secrets)
                if answer.get("error_description"):
                    reason += f": {_clean(answer['error_description'], secrets)}"
                raise self._fail(f"{reason} (HTTP {resp.status})")
            raise self._fail(f"HTTP {resp.status}")
        if not isinstance(answer, dict):
            raise self._fail("the answer is not a JSON object")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token or _HEADER_VALUE_BAD.search(token):
            raise self._fail("the answer has no usable access_token")
        expires = answer.get("expires_in")
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            lifetime = float(expires) - min(SKEW, float(expires) / 4)
        else:
            lifetime = DEFAULT_LIFETIME
        log.info("server %s: exchanged a token at %s (%s, valid %s s)", self.server, redact_url(self.endpoint),
                 _clean(answer.get("issued_token_type") or "access token", secrets),
                 expires if expires is not None else "?")
        return token, lifetime
