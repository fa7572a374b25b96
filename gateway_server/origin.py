"""Origin and Host checks (browsers and DNS rebinding).

A request's ``Origin``, when present, must be one the gateway serves itself
(localhost, 127.0.0.1 and [::1] on its own port when bound locally; its public
URL otherwise) or one the router's ``cors.allowOrigins`` lists (``*`` allows
any). A locally bound gateway also refuses a ``Host`` that is not local.
"""

from __future__ import annotations

import functools
import ipaddress
from urllib.parse import urlsplit

from mcpgw_sdk.config_model import Cors, default


def is_loopback_name(name: str) -> bool:
    """Whether ``name`` (a host without port) is loopback: ``localhost``, an IPv4 literal in 127.0.0.0/8, or ``::1``.

    Matched exactly: ``127.attacker.example`` or ``localhost.evil`` are names, not loopback.

    >>> [is_loopback_name(h) for h in ("localhost", "127.8.9.10", "[::1]", "127.attacker.example", "0x7f.1")]
    [True, True, True, False, False]
    """
    name = name.strip().lower()
    if name == "localhost":
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_local_bind(host: str) -> bool:
    """Whether the gateway listens on a loopback address only."""
    return is_loopback_name(host)


def split_host(value: str) -> tuple[str, str] | None:
    """``(host, port)`` of a ``Host`` header value (port ``""`` when absent); ``None`` when malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[: end + 1], value[end + 1:]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    elif value.count(":") == 1:
        host, port = value.split(":")
    elif ":" in value:
        return None  # a bare IPv6 address must be bracketed in a Host header
    else:
        host, port = value, ""
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5):
        return None
    return host, port


def host_allowed(host_header: str | None, *, local_bind: bool) -> bool:
    """Whether the ``Host`` header is acceptable (always, unless bound locally and the host is not loopback).

    A locally bound gateway accepts only ``localhost``, 127.x.y.z literals and ``[::1]``, each with an
    optional numeric port: a DNS name that merely starts with ``127.`` is foreign (DNS rebinding).
    """
    if not local_bind or not host_header:
        return True
    if len(host_header) > 64:  # checked, never kept: the cache holds only short values
        return _loopback_host(host_header)
    return _loopback_host_cached(host_header)


def _loopback_host(host_header: str) -> bool:
    parts = split_host(host_header)
    return parts is not None and is_loopback_name(parts[0])


# Clients send the same few Host values on every request: memoised, bounded (a client cycling through
# values only falls back to the full parse).
_loopback_host_cached = functools.lru_cache(maxsize=256)(_loopback_host)


def own_origins(*, local_bind: bool, port: int | str, public_url: str = "") -> frozenset[str]:
    """The origins that are the gateway itself."""
    found = set()
    if local_bind:
        for name in ("localhost", "127.0.0.1", "[::1]"):
            found.add(f"http://{name}:{port}")
            found.add(f"https://{name}:{port}")
    if public_url:
        parts = urlsplit(public_url)
        found.add(f"{parts.scheme}://{parts.netloc}".lower())
    return frozenset(found)


def origin_allowed(origin: str | None, own: frozenset[str], cors: Cors | None) -> bool:
    """Whether a request with this ``Origin`` may be served (no ``Origin`` always may)."""
    if not origin:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in own:
        return True
    allowed = cors.allow_origins if cors is not None else ()
    return "*" in allowed or origin in {str(a).rstrip("/").lower() for a in allowed}


# An empty list means the model's default, as an absent one does (the model keeps an empty list as given).
_METHODS, _HEADERS, _EXPOSE = (default(Cors, key) for key in ("allowMethods", "allowHeaders", "exposeHeaders"))


def cors_headers(origin: str | None, cors: Cors | None, *, preflight: bool = False) -> list[tuple[str, str]]:
    """CORS response headers for an allowed cross-origin request (empty when the router has no ``cors``)."""
    if not origin or cors is None:
        return []
    allowed = cors.allow_origins
    if "*" not in allowed and origin.rstrip("/").lower() not in {str(a).rstrip("/").lower() for a in allowed}:
        return []
    credentials = cors.allow_credentials
    headers = [("Access-Control-Allow-Origin", origin if credentials or "*" not in allowed else "*"),
               ("Vary", "Origin")]
    if credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    expose = cors.expose_headers or _EXPOSE
    headers.append(("Access-Control-Expose-Headers", ", ".join(expose)))
    if preflight:
        methods = cors.allow_methods or _METHODS
        allow_headers = cors.allow_headers or _HEADERS
        headers += [("Access-Control-Allow-Methods", ", ".join(methods)),
                    ("Access-Control-Allow-Headers", ", ".join(allow_headers)),
                    ("Access-Control-Max-Age", "600")]
    return headers
