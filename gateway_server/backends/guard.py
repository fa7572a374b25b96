"""The outbound guard: which addresses the gateway may connect to.

Every outbound connection — REST tools, upstream MCP servers over SSE and
Streamable HTTP, OpenAPI specs fetched by URL, JWKS and issuer metadata — is
checked *after* DNS resolution, and the client then connects to the checked
address (sending the original ``Host``), so a name cannot resolve to one address
for the check and another for the connection (DNS rebinding). Redirects are
checked hop by hop, or not followed.

The trust rule is decided on the *rendered* URL's authority ``(scheme, host, port)``:

- link-local (``169.254.0.0/16``, ``fe80::/10``), cloud metadata addresses
  (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``) and the deprecated
  site-local ``fec0::/10`` are always refused;
- IPv6 addresses that embed an IPv4 address (IPv4-mapped and -compatible, NAT64
  ``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo ``2001::/32``)
  are classified by the IPv4 address they lead to;
- loopback, private and other non-global addresses are reachable only when the
  authority equals one written literally in the document (see
  :func:`document_texts`; the caller passes ``literal=True``), when the host
  (or ``host:port``) is in the operator's ``outbound_allow_hosts`` list, or when the
  address lies in the operator's ``allow_argument_hosts`` networks;
- public addresses are always reachable.

How a URL was built (arguments, client headers, filters, subscripts) does not
matter: only the authority it renders to does.

>>> classify("64:ff9b::7f00:1")
'internal'
>>> Guard().check("169.254.169.254", 80, literal=True)  # doctest: +SKIP
Traceback (most recent call last):
Refused: refused: 169.254.169.254 is a link-local/metadata address
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from mcpgw_sdk.errors import ConfigError, McpgwError
from mcpgw_sdk.settings import resolve

METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
TEREDO = ipaddress.ip_network("2001::/32")
# Worst first: a name or an address is as bad as the worst thing it can lead to.
_SEVERITY = {"metadata": 4, "link-local": 3, "site-local": 3, "internal": 1, "public": 0}

# Hostnames and IP literals as they appear in config text ("http://api.local:80/x" -> "api.local").
_HOST_TOKEN = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_\-]*)(?:\.[A-Za-z0-9_\-]+)*")
# scheme://[userinfo@]host[:port] as written in config text; a template right after it (http://api{{ x }})
# makes the host unknown, so the match must end where the authority does.
_AUTHORITY = re.compile(r"""(?i)\b(https?)://(?:[^\s/?#@{}]*@)?(\[[0-9a-f:.]+\]|[a-z0-9_.-]+)(?::(\d{1,5}))?"""
                        r"""(?=[/?#\s"'<>]|$)""")
Authority = tuple  # (scheme, host, port): lower-case, IPv6 without brackets, default ports filled in


class Refused(McpgwError, PermissionError):
    """Raised when the guard refuses a destination; the message says which address and why."""

    def __init__(self, message: str, *, host: str = "", address: str = ""):
        self.host = host
        self.address = address
        super().__init__(message)


def host_tokens(texts: Iterable[str]) -> frozenset[str]:
    """Every hostname-like token of ``texts`` (lower-case, IPv6 without brackets)."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        for token in _HOST_TOKEN.findall(str(text)):
            found.add(token.strip("[]").lower())
    return frozenset(found)


def authorities(texts: Any) -> frozenset[Authority]:
    """Every ``(scheme, host, port)`` written as an http(s) URL in ``texts``.

    >>> sorted(authorities(["http://127.0.0.1:5236/x", "https://API.example/{{ args.id }}"]))
    [('http', '127.0.0.1', 5236), ('https', 'api.example', 443)]
    """
    found: set[Authority] = set()
    for text in texts:
        for scheme, host, port in _AUTHORITY.findall(str(text or "")):
            scheme = scheme.lower()
            found.add((scheme, host.strip("[]").lower(), int(port) if port else (443 if scheme == "https" else 80)))
    return frozenset(found)


def url_authority(url: str) -> Authority | None:
    """The ``(scheme, host, port)`` of ``url``; ``None`` when it has no host or a malformed port."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not host:
        return None
    return (scheme, host, port or (443 if scheme == "https" else 80))


def document_texts(content: Any) -> list[str]:
    """The texts of a config document that name destinations, as written.

    REST tools' ``endpoint``, REST servers' and upstreams' ``config`` values,
    upstreams' ``url`` and routers' OAuth ``issuer``/``jwksUri``.
    """
    content = getattr(content, "content", content)
    if not isinstance(content, dict):
        return []
    texts: list[str] = []

    def values(mapping: Any) -> None:
        if isinstance(mapping, dict):
            texts.extend(str(v) for v in mapping.values() if v is not None)

    for server in content.get("servers") or []:
        if isinstance(server, dict):
            values(server.get("config"))
    for tool in content.get("tools") or []:
        if isinstance(tool, dict) and tool.get("endpoint"):
            texts.append(str(tool["endpoint"]))
    for upstream in content.get("mcpServers") or []:
        if isinstance(upstream, dict):
            values(upstream.get("config"))
            if upstream.get("url"):
                texts.append(str(upstream["url"]))
    for router in content.get("routers") or []:
        auth = router.get("auth") if isinstance(router, dict) else None
        if isinstance(auth, dict):
            texts.extend(str(auth[k]) for k in ("issuer", "jwksUri") if auth.get(k))
    return texts


def _normalise(address: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to (mapped, compatible, NAT64, 6to4, Teredo); often none."""
    value = int(ip)
    low32 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (deprecated); not :: or ::1
        return [low32]
    if ip in NAT64:
        return [low32]
    if ip in NAT64_LOCAL:
        # RFC 6052 /48 puts the IPv4 address in bits 48-63 and 72-87; /96 inside it puts it last.
        split = ipaddress.IPv4Address(((value >> 64) & 0xFFFF) << 16 | (value >> 40) & 0xFFFF)
        return [low32, split]
    if ip in SIX_TO_FOUR:
        return [ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF)]
    if ip in TEREDO:
        server, client = ip.teredo
        return [client, server]
    return []


def _classify_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    if ip in METADATA:
        return "metadata"
    if any(ip in net for net in LINK_LOCAL if net.version == ip.version):
        return "link-local"
    if ip.version == 6 and ip in SITE_LOCAL:
        return "site-local"
    if ip.is_global and not ip.is_multicast:
        return "public"
    return "internal"


def classify(address: str) -> str:
    """``metadata``, ``link-local``, ``site-local``, ``internal`` (loopback, private, reserved …) or ``public``.

    An IPv6 address embedding an IPv4 address is as bad as the worst of itself and that
    IPv4 address; the NAT64 local-use and Teredo ranges are never public.

    >>> classify("2002:7f00:1::"), classify("::ffff:169.254.169.254"), classify("8.8.8.8")
    ('internal', 'metadata', 'public')
    """
    ip = _normalise(address.split("%", 1)[0])
    kind = _classify_ip(ip)
    if ip.version == 6:
        inner = [_classify_ip(v4) for v4 in embedded_ipv4(ip)]
        if ip in NAT64_LOCAL or ip in TEREDO:
            inner.append("internal")
        kind = max([kind, *inner], key=_SEVERITY.__getitem__)
    return kind


def _allow_entry(entry: str) -> tuple[str, int | None]:
    """``host`` or ``host:port`` (``[v6]:port``) of the ``outbound_allow_hosts`` setting."""
    text = entry.strip().lower()
    if "://" in text:
        authority = url_authority(text)
        if authority is None:
            raise ValueError(f"{entry!r} is not a host or host:port")
        return authority[1], authority[2] if urlsplit(text).port else None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:
        host, port = text, ""
    if not host or (port and not port.isdigit()) or any(c in host for c in "/@ "):
        raise ValueError(f"{entry!r} is not a host or host:port")
    return host, int(port) if port else None


class Guard:
    """Checks destinations of outbound connections; decisions are cached for ``ttl`` seconds.

    ``allow_argument_hosts`` (CIDRs) and ``allow_hosts`` (``host`` or ``host:port``)
    default to the settings ``allow_argument_hosts`` and ``outbound_allow_hosts``:
    the operator's allow-list.
    """

    def __init__(self, *, allow_argument_hosts: Iterable[str] | None = None,
                 allow_hosts: Iterable[str] | None = None, ttl: float = 5.0):
        cidrs = list(allow_argument_hosts) if allow_argument_hosts is not None else resolve().allow_argument_hosts
        try:
            self.allowed = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        except ValueError as exc:
            raise ConfigError(f"allow_argument_hosts: {exc}") from None
        hosts = list(allow_hosts) if allow_hosts is not None else resolve().outbound_allow_hosts
        try:
            self.allowed_hosts = frozenset(_allow_entry(h) for h in hosts)
        except ValueError as exc:
            raise ConfigError(f"outbound_allow_hosts: {exc}") from None
        self.ttl = ttl
        self._cache: dict[tuple[str, int, bool], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def allows(self, host: str, port: int) -> bool:
        """True when the operator's ``outbound_allow_hosts`` names ``host`` (any port) or ``host:port``."""
        host = host.strip("[]").lower()
        return (host, None) in self.allowed_hosts or (host, port) in self.allowed_hosts

    def check(self, host: str, port: int, *, literal: bool) -> list[str]:
        """Resolve ``host`` and return the addresses to connect to, or raise :class:`Refused`.

        ``literal`` says the caller found the authority written in the document. All
        resolved addresses must pass: a name that resolves to one public and one
        metadata address is refused.
        """
        literal = literal or self.allows(host, port)
        key = (host, port, literal)
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            if isinstance(hit[1], Refused):
                raise Refused(str(hit[1]), host=hit[1].host, address=hit[1].address)
            return hit[1]
        try:
            result: Any = self._decide(host, port, literal)
        except Refused as exc:
            result = exc
        with self._lock:
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[key] = (now + self.ttl, result)
        if isinstance(result, Refused):
            raise result
        return result

    def connector(self, literal_hosts: Iterable[Authority] = ()) -> Callable[[str, str, int], list[str]]:
        """A ``(scheme, host, port) -> addresses`` check for clients outside this package (the MCP transports).

        An authority in ``literal_hosts`` is trusted as written in the document; any
        other must be public or allow-listed. Raises :class:`Refused` (an ``OSError``).
        """
        literal_set = frozenset(literal_hosts)

        def check(scheme: str, host: str, port: int) -> list[str]:
            host = host.strip("[]").lower()
            return self.check(host, port, literal=(scheme.lower(), host, port) in literal_set)

        return check

    def _resolve(self, host: str, port: int) -> list[str]:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise OSError(f"cannot resolve host {host!r}: {exc.strerror or exc}") from None
        addresses: list[str] = []
        for _family, _type, _proto, _canon, sockaddr in infos:
            if sockaddr[0] not in addresses:
                addresses.append(sockaddr[0])
        return addresses

    def _decide(self, host: str, port: int, literal: bool) -> list[str]:
        addresses = self._resolve(host, port)
        for address in addresses:
            kind = classify(address)
            via = f" (host {host})" if host != address else ""
            if kind in ("metadata", "link-local"):
                raise Refused(f"refused: {address} is a link-local/metadata address{via}", host=host,
                              address=address)
            if kind == "site-local":
                raise Refused(f"refused: {address} is a deprecated site-local address{via}", host=host,
                              address=address)
            if kind == "internal" and not literal:
                ip = _normalise(address.split("%", 1)[0])
                if not any(ip.version == net.version and ip in net for net in self.allowed):
                    raise Refused(
                        f"refused: {address} is a loopback/private address and {host}:{port} is not written in "
                        "the config document (allow it with the outbound_allow_hosts or allow_argument_hosts "
                        "setting)", host=host, address=address)
        return addresses


_default: Guard | None = None
_default_lock = threading.Lock()


def default_guard() -> Guard:
    """The process-wide guard (settings read once, decisions cached)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = Guard()
    return _default


def fetch(url: str, *, literal_hosts: Iterable[Authority] | None = None, timeout: float = 10.0,
          max_bytes: int = 4 * 1024 * 1024, max_redirects: int = 5, headers: dict[str, str] | None = None,
          guard: Guard | None = None) -> Any:
    """GET ``url`` through the guard and return the :class:`~gateway_server.backends.http.Response`.

    ``literal_hosts`` defaults to the URL's own authority: the person who typed the URL
    (an operator or document author) trusts it as if written in a document; redirects to
    any other authority must be public. Raises :class:`Refused` or
    :class:`~gateway_server.backends.http.HttpError`.
    """
    from .http import HttpClient

    if literal_hosts is None:
        own = url_authority(url)
        literal_hosts = {own} if own else set()
    client = HttpClient(guard=guard or default_guard(), max_idle=0)
    try:
        return client.request("GET", url, headers=headers, timeout=timeout, max_bytes=max_bytes,
                              literal_hosts=frozenset(literal_hosts), max_redirects=max_redirects)
    finally:
        client.close()
