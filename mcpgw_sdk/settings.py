"""One registry of settings: name, default, help.

It feeds command-line flags, ``MCPGW_*`` environment variables, ``/readyz`` and
the documentation (``docs/settings.md`` is checked against it by the tests).
Precedence: explicit value (a flag) > environment variable > default.

Entry points (the commands, ``gateway_server.wsgi``) resolve the settings once,
with :func:`resolve`, and pass the :class:`Settings` (or the values it holds)
down; library code does not read the environment itself. :func:`option` makes
a command's flag for a setting, so its help is written once, here.

>>> from mcpgw_sdk.settings import resolve
>>> resolve().reload_interval
2.0
>>> resolve({"reload_interval": 0.5}).reload_interval
0.5
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
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
    """Return the setting's value: ``value`` if given, else its environment variable, else the default.

    For entry points; library code receives a :class:`Settings` (or its values) instead.
    """
    setting = SETTINGS[name]
    if value is not None:
        return value
    return _parse(setting, os.environ.get(setting.env))


def _parse(setting: Setting, raw: str | None) -> Any:
    if raw is None:
        return setting.default
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"{setting.env}: {exc}") from None


class Settings:
    """Every setting's value, resolved once (flag > environment variable > default) and then fixed.

    Read a value as an attribute (``settings.tool_timeout``) or with :meth:`get`. Each value is
    read and parsed on first use, then kept: making one costs nothing, and a malformed variable
    is an error (``ConfigError`` naming it) only where that setting is used, as before.

    >>> s = resolve({"port": 8000})
    >>> s.port, s.get("host")
    (8000, '127.0.0.1')
    """

    __slots__ = ("_environ", "_explicit", "_values")

    def __init__(self, explicit: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None):
        environ = os.environ if environ is None else environ
        explicit = {k: v for k, v in (explicit or {}).items() if v is not None}
        unknown = sorted(set(explicit) - set(SETTINGS))
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(unknown)}")
        object.__setattr__(self, "_explicit", explicit)
        object.__setattr__(self, "_environ", environ)
        object.__setattr__(self, "_values", dict(explicit))

    def get(self, name: str) -> Any:
        """The value of setting ``name`` (a ``KeyError`` for a name the registry does not hold)."""
        try:
            return self._values[name]
        except KeyError:
            setting = SETTINGS[name]
            value = self._values[name] = _parse(setting, self._environ.get(setting.env))
            return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in SETTINGS:
            raise AttributeError(name)
        return self.get(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Settings are immutable: resolve() new ones (or use replace())")

    def replace(self, **overrides: Any) -> Settings:
        """A copy with ``overrides`` as explicit values (``None`` leaves a setting as it was)."""
        copy = Settings({**self._explicit, **{k: v for k, v in overrides.items() if v is not None}}, self._environ)
        for name, value in self._values.items():  # what was read already stays as read
            copy._values.setdefault(name, value)
        return copy

    def __repr__(self) -> str:
        return f"Settings(explicit={sorted(self._explicit)})"


def resolve(overrides: Mapping[str, Any] | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings of this process: ``overrides`` (flags; ``None`` values are unset) > ``MCPGW_*`` > defaults.

    Call it in an entry point and pass the result down; library functions that take
    ``settings=None`` call it themselves, so notebooks need not.
    """
    return Settings(overrides, environ)


def option(name: str, *param_decls: str, show_default: bool = False, **attrs: Any) -> Callable[[Any], Any]:
    """The click option of setting ``name``: its help (with ``[env: MCPGW_X]``) and type come from the registry.

    ``param_decls`` default to ``--name-with-dashes``; ``show_default`` adds the default to
    the ``[env: …]`` note. The option's default is ``None`` (unset), so :func:`resolve` applies
    the environment and the default: a malformed variable is reported the registry's way.

    >>> import click
    >>> @click.command()
    ... @option("reload_interval")
    ... def cmd(reload_interval): ...
    >>> cmd.params[0].opts, cmd.params[0].help
    (['--reload-interval'], 'Seconds between polls of the config revision. [env: MCPGW_RELOAD_INTERVAL]')
    """
    import click

    setting = SETTINGS[name]
    note = f"{setting.env}; default {setting.default}" if show_default else setting.env
    attrs.setdefault("help", f"{setting.help} [env: {note}]")
    attrs.setdefault("default", None)
    if "type" not in attrs and type(setting.default) in (int, float):
        attrs["type"] = type(setting.default)
    return click.option(*(param_decls or ("--" + name.replace("_", "-"),)), **attrs)


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
