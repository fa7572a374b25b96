"""The outbound guard: which addresses a REST tool may reach.

Every backend request and every redirect hop is checked *after* DNS
resolution, and the client then connects to the checked address (sending the
original ``Host``), so a name cannot resolve to one address for the check and
another for the connection (DNS rebinding).

Rules:

- link-local (``169.254.0.0/16``, ``fe80::/10``) and cloud metadata addresses
  (``169.254.169.254``, ``fd00:ec2::254``, ``100.100.100.200``) are always refused;
- loopback, private and other non-global addresses are reachable when the URL
  is *literal*: its scheme, host and port are written in the operator's config
  text (endpoint, server ``config``) or rendered by templates that no argument
  or client request data can steer (the REST backend decides that by probing
  each endpoint once; see ``rest.py``) — another port of a config-named host
  named by an argument is not literal;
- a non-literal host may reach them only inside the ``allow_argument_hosts``
  networks (CIDRs);
- public addresses are always reachable.

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
from collections.abc import Iterable
from typing import Any

from mcpgw_sdk import settings
from mcpgw_sdk.errors import ConfigError, McpgwError

METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))

# Hostnames and IP literals as they appear in config text ("http://api.local:80/x" -> "api.local").
_HOST_TOKEN = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_](?:[A-Za-z0-9_\-]*)(?:\.[A-Za-z0-9_\-]+)*")


class Refused(McpgwError, PermissionError):
    """Raised when the guard refuses a destination; the message says which address and why."""

    def __init__(self, message: str, *, host: str = "", address: str = ""):
        self.host = host
        self.address = address
        super().__init__(message)


def host_tokens(texts: Iterable[str]) -> frozenset[str]:
    """Every hostname-like token of ``texts`` (lower-case, IPv6 without brackets): the literal hosts."""
    found: set[str] = set()
    for text in texts:
        if not text:
            continue
        for token in _HOST_TOKEN.findall(str(text)):
            found.add(token.strip("[]").lower())
    return frozenset(found)


def _normalise(address: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def classify(address: str) -> str:
    """``metadata``, ``link-local``, ``internal`` (loopback, private, reserved …) or ``public``."""
    ip = _normalise(address.split("%", 1)[0])
    if ip in METADATA:
        return "metadata"
    if any(ip in net for net in LINK_LOCAL if net.version == ip.version):
        return "link-local"
    if ip.is_global and not ip.is_multicast:
        return "public"
    return "internal"


class Guard:
    """Checks destinations of backend requests; decisions are cached for ``ttl`` seconds.

    ``allow_argument_hosts`` defaults to the setting of that name.
    """

    def __init__(self, *, allow_argument_hosts: Iterable[str] | None = None, ttl: float = 5.0):
        cidrs = settings.get("allow_argument_hosts", list(allow_argument_hosts) if allow_argument_hosts is not None
                             else None)
        try:
            self.allowed = tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)
        except ValueError as exc:
            raise ConfigError(f"allow_argument_hosts: {exc}") from None
        self.ttl = ttl
        self._cache: dict[tuple[str, int, bool], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def check(self, host: str, port: int, *, literal: bool) -> list[str]:
        """Resolve ``host`` and return the addresses it may connect to, or raise :class:`Refused`.

        All resolved addresses must pass: a name that resolves to one public and
        one metadata address is refused.
        """
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
            if kind in ("metadata", "link-local"):
                raise Refused(f"refused: {address} is a link-local/metadata address"
                              + (f" (host {host})" if host != address else ""), host=host, address=address)
            if kind == "internal" and not literal:
                ip = _normalise(address.split("%", 1)[0])
                if not any(ip.version == net.version and ip in net for net in self.allowed):
                    raise Refused(
                        f"refused: {address} is a loopback/private address and host {host!r} came from the "
                        "call's arguments or request (allow it with the allow_argument_hosts setting, "
                        "MCPGW_ALLOW_ARGUMENT_HOSTS)", host=host, address=address)
        return addresses
