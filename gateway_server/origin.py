"""Origin and Host checks (browsers and DNS rebinding).

A request's ``Origin``, when present, must be one the gateway serves itself
(localhost, 127.0.0.1 and [::1] on its own port when bound locally; its public
URL otherwise) or one the router's ``cors.allowOrigins`` lists (``*`` allows
any). A locally bound gateway also refuses a ``Host`` that is not local.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})


def is_local_bind(host: str) -> bool:
    """Whether the gateway listens on a loopback address only."""
    return host in LOCAL_HOSTS or host.startswith("127.")


def _hostname(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def host_allowed(host_header: str | None, *, local_bind: bool) -> bool:
    """Whether the ``Host`` header is acceptable (always, unless bound locally and the host is foreign)."""
    if not local_bind or not host_header:
        return True
    name = _hostname(host_header)
    return name in LOCAL_HOSTS or name.startswith("127.")


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


def origin_allowed(origin: str | None, own: frozenset[str], cors: dict[str, Any] | None) -> bool:
    """Whether a request with this ``Origin`` may be served (no ``Origin`` always may)."""
    if not origin:
        return True
    origin = origin.strip().rstrip("/").lower()
    if origin in own:
        return True
    allowed = (cors or {}).get("allowOrigins") or []
    return "*" in allowed or origin in {str(a).rstrip("/").lower() for a in allowed}


def cors_headers(origin: str | None, cors: dict[str, Any] | None, *, preflight: bool = False) -> list[tuple[str, str]]:
    """CORS response headers for an allowed cross-origin request (empty when the router has no ``cors``)."""
    if not origin or not cors:
        return []
    allowed = cors.get("allowOrigins") or []
    if "*" not in allowed and origin.rstrip("/").lower() not in {str(a).rstrip("/").lower() for a in allowed}:
        return []
    credentials = bool(cors.get("allowCredentials"))
    headers = [("Access-Control-Allow-Origin", origin if credentials or "*" not in allowed else "*"),
               ("Vary", "Origin")]
    if credentials:
        headers.append(("Access-Control-Allow-Credentials", "true"))
    expose = cors.get("exposeHeaders") or ["Mcp-Session-Id", "MCP-Protocol-Version"]
    headers.append(("Access-Control-Expose-Headers", ", ".join(expose)))
    if preflight:
        methods = cors.get("allowMethods") or ["GET", "POST", "DELETE", "OPTIONS"]
        allow_headers = cors.get("allowHeaders") or ["Content-Type", "Authorization", "Mcp-Session-Id",
                                                     "MCP-Protocol-Version", "Last-Event-ID"]
        headers += [("Access-Control-Allow-Methods", ", ".join(methods)),
                    ("Access-Control-Allow-Headers", ", ".join(allow_headers)),
                    ("Access-Control-Max-Age", "600")]
    return headers
