"""One registry of settings: name, default, help.

It feeds command-line flags, ``MCPGW_*`` environment variables, ``/readyz`` and
the documentation (``docs/settings.md`` is checked against it by the tests).
Precedence: explicit value (a flag) > environment variable > default.

>>> from mcpgw_sdk.settings import get
>>> get("reload_interval")
2.0
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{text!r} is not a boolean (use true or false)")


def _list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _log_format(text: str) -> str:
    value = text.strip().lower()
    if value not in ("auto", "json", "text"):
        raise ValueError(f"{text!r} is not a log format (use auto, json or text)")
    return value


@dataclass(frozen=True)
class Setting:
    """A named setting with its default, parser and help text."""

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str

    @property
    def env(self) -> str:
        """The environment variable that sets it, e.g. ``MCPGW_DATABASE_URL``."""
        return "MCPGW_" + self.name.upper()


SETTINGS: dict[str, Setting] = {}


def register(name: str, default: Any, help: str, parse: Callable[[str], Any] = str) -> Setting:
    """Add a setting to the registry (each module registers its own at import)."""
    setting = Setting(name, default, help, parse)
    SETTINGS[name] = setting
    return setting


def get(name: str, value: Any = None) -> Any:
    """Return the setting's value: ``value`` if given, else its environment variable, else the default."""
    setting = SETTINGS[name]
    if value is not None:
        return value
    raw = os.environ.get(setting.env)
    if raw is None:
        return setting.default
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{setting.env}: {exc}") from None


register("database_url", "sqlite:///mcpgw.db",
         "Where configs, users and history live: sqlite:///file.db, postgresql://…, mysql://…, yaml:///dir.")
register("host", "127.0.0.1", "Address the gateway listens on.")
register("port", 5235, "Port of the gateway (MCP endpoints, /healthz, /readyz, /metrics).", int)
register("api_host", "127.0.0.1", "Address the management API listens on.")
register("api_port", 5234, "Port of the management API (/api/v1).", int)
register("reload_interval", 2.0, "Seconds between polls of the config revision.", float)
register("public_url", "", "The gateway's public base URL when it is not bound to loopback (used for Origin checks).")
register("max_body_bytes", 4 * 1024 * 1024, "Largest request body the gateway accepts (413 above).", int)
register("max_batch", 100, "Most messages one JSON-RPC batch may hold (-32600 above).", int)
register("max_initialize_bytes", 64 * 1024, "Largest `initialize` params (as JSON bytes) a client may send.", int)
register("max_sessions", 10000, "Most MCP sessions the gateway holds (503 above; 0: no limit).", int)
register("max_sessions_per_router", 2000, "Most MCP sessions one router holds (503 above; 0: no limit).", int)
register("max_sessions_per_principal", 100, "Most MCP sessions one API key or token subject holds (429 above; "
         "0: no limit).", int)
register("header_timeout", 10.0, "Seconds a client has to send a request line and headers under `mcpgw serve` "
         "(also how long an idle keep-alive connection stays open).", float)
register("body_timeout", 30.0, "Seconds a client has to send a request body to an MCP endpoint (400 after).", float)
register("tool_timeout", 30.0, "Default timeout of a REST tool call, in seconds.", float)
register("max_response_bytes", 10 * 1024 * 1024, "Default largest backend response a tool reads, in bytes.", int)
register("forward_headers", [], "Client headers passed to backends without a template naming them (comma list).", _list)
register("allow_argument_hosts", [], "Networks (CIDR) whose loopback/private addresses outbound connections may "
         "reach even when not written in a document (comma list).", _list)
register("outbound_allow_hosts", [], "Hosts or host:port that outbound connections may reach even when they "
         "resolve to loopback/private addresses, as if written in every document (comma list).", _list)
register("template_env", [], "Environment variables templates may read with env(\"NAME\") (comma list).", _list)
register("render_timeout", 1.0, "Most seconds one template render may take (the tool's timeout, when shorter, bounds it too).", float)
register("render_max_bytes", 1024 * 1024, "Most characters one template render may produce; no value it builds may be larger.", int)
register("session_ttl", 3600.0, "Seconds an idle MCP session lives.", float)
register("sse_heartbeat", 15.0, "Seconds between heartbeat comments on open SSE streams.", float)
register("redis_url", "", "Redis URL for shared sessions across workers and replicas; empty keeps them in memory.")
register("log_level", "INFO", "Log level of the gateway and API (DEBUG, INFO, WARNING, ERROR).")
register("log_format", "auto", "Log format: json (one object per line, for log collectors), text, or auto: "
         "text when standard error is a terminal, json otherwise.", _log_format)
register("audit", True, "Write an audit record per tool call (batched, off the request path).", _bool)
register("readyz_token", "", "Bearer token that shows /readyz details to callers that are not local; empty: only loopback callers (not through a proxy) see them.")
register("allow_anonymous", False, "Serve routers without auth when bound to a non-loopback address.", _bool)
register("jwt_secret", "", "Secret signing management-API tokens; generated and stored on first run when empty.")
register("state_secret", "", "Secret sealing the `requestState` of 2026-07-28 multi-round-trip requests (at least 16 "
         "characters); generated and stored on first run when empty.")
register("state_ttl", 600.0, "Seconds a sealed `requestState` (a 2026-07-28 multi-round-trip request) stays valid.",
         float)
register("held_call_timeout", 60.0, "Seconds a legacy upstream's call waits for a 2026-07-28 client's retry "
         "answering its elicitation, sampling or roots request (then it is cancelled).", float)
register("max_held_calls", 1000, "Most held calls (a legacy upstream's call awaiting a 2026-07-28 client's "
         "answer) this gateway process keeps (a tool error above; 0: no limit).", int)
register("max_held_calls_per_principal", 16, "Most held calls one API key or token subject keeps (a tool error "
         "above; 0: no limit).", int)
register("max_listen_per_principal", 32, "Most 2026-07-28 `subscriptions/listen` streams one API key or token "
         "subject keeps open in this gateway process (429 above; 0: no limit).", int)
register("admin_password", "", "Password `mcpgw demo` gives the admin user; generated and printed once when empty.")
register("gateway_url", "http://127.0.0.1:5235", "The gateway's URL as the console reaches it.")
register("version_retention", 100, "How many versions to keep per config document (older ones are pruned).", int)
register("stdio_commands", [], "Programs members may run as stdio upstreams: absolute paths or bare names, "
         "matched exactly (comma list; allow-listing an interpreter allows any code).", _list)
register("stdio_user", "", "OS user stdio upstreams run as (the gateway must be root); empty runs them as the "
         "gateway's own user.")
register("secrets_key", "", "Key that encrypts per-user secrets at rest (at least 32 characters, e.g. "
         "`openssl rand -base64 32`); keep it out of the database. Without it, secrets cannot be set or used.")
register("secrets_cache_ttl", 5.0, "Seconds a gateway process reuses a caller's sealed secrets before reading "
         "them again (a changed or deleted secret takes effect within this time).", float)
