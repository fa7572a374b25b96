"""Upstream MCP servers (``mcpServers`` entries) as backends: stdio, SSE or Streamable HTTP.

One shared, pooled upstream session serves stateless use (tools, prompts,
resources, completion) and routes sampling/elicitation requests to the client
whose call caused them. A downstream session gets an upstream session of its own
only when the upstream must keep state for it (resource subscriptions, a logging
level), and clients share sessions by rendered credentials when headers or env
render from the client's request. ``docs/upstreams.md`` explains the choice. Everything here is threads and blocking IO (greenlets under gevent),
built on :class:`mcpgw_sdk.client.McpClient`.

Eras: an HTTP upstream is classified once by the client's ``server/discover`` probe (``era``,
default ``auto``; stdio and SSE upstreams default to ``legacy``). A modern (2026-07-28) upstream
gets stateless requests and no upstream session; the classification is dropped and probed again
after a failure. Legacy sessions remain for what the modern era lacks: subscriptions and log levels,
and calls of legacy clients that can answer sampling/elicitation/roots (a second, shared legacy
session on a dual-era upstream).

MRTR: a modern upstream's ``input_required`` answer to a modern caller's ``tools/call``,
``prompts/get`` or ``resources/read`` is returned (``ctx.input_upstream`` names this upstream) for
the core to seal and relay; the caller's retry brings ``ctx.input_responses`` and the upstream's
own ``ctx.request_state`` back, sent with the call. To a legacy caller it is bridged
(:meth:`UpstreamServer._ask_legacy`): each ``inputRequests`` entry goes to the client as a
server→client request over its session, and the upstream is retried with the answers as
``inputResponses`` and its own ``requestState`` (held in memory for the call), for at most
:data:`MAX_INPUT_ROUNDS` rounds within the call's deadline. The other way round, a legacy upstream's
server→client request during a modern caller's ``tools/call`` is held (:meth:`UpstreamServer._call_held`):
the upstream call waits, on a legacy session of the caller's principal, in this process's registry
(:mod:`.held`, which routes a retry reaching another process there through Redis), and the caller gets
``input_required`` naming the held call; its retry answers the request (docs/eras.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from mcpgw_sdk.client import MODERN_VERSION, McpClient, McpConnectionError, McpError, McpSessionExpired, McpTimeout
from mcpgw_sdk.config_model import MCP_TYPES, POLICIES, Document, McpServer, default
from mcpgw_sdk.errors import ConfigError, McpgwError
from mcpgw_sdk.mcp_transports import RESERVED_META_PREFIX
from mcpgw_sdk.redact import redact_text
from mcpgw_sdk.settings import Settings, resolve
from mcpgw_sdk.templates import compile_template, forbidden_env, request_context

from ..token_exchange import TokenExchange, without_credentials
from . import CallContext, InputRefused, credentials, held
from .guard import Authority, Guard, authorities, default_guard, document_texts, url_authority

log = logging.getLogger("mcpgw.upstream")
#: The tenant of a document that names none (the model's default).
NO_TENANT = default(Document, "tenant")

# Capabilities of the downstream client that the upstream may use through a session of its own.
CALLBACK_CAPABILITIES = ("sampling", "elicitation", "roots")
# The shared session offers the call-scoped callbacks; each request is routed to the client whose call
# caused it (or refused when that cannot be told). roots/list may come at any time, so only sessions
# of one client offer roots.
SHARED_CAPABILITIES = {"sampling": {}, "elicitation": {}}
ERAS = ("auto", MODERN_VERSION, "legacy")
# -32021 (MissingRequiredClientCapability) and -32022 (UnsupportedProtocolVersion) of 2026-07-28.
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
# The server→client request a missing client capability stands for (how -32021 reaches the gateway's core).
_CAPABILITY_REQUESTS = {"sampling": "sampling/createMessage", "elicitation": "elicitation/create",
                        "roots": "roots/list"}
LOG_LEVEL = "io.modelcontextprotocol/logLevel"
# ``inputRequests`` methods and the client capability each needs (a legacy caller must have declared it).
_INPUT_KINDS = {v: k for k, v in _CAPABILITY_REQUESTS.items()}
# How many ``input_required`` rounds of a modern upstream the gateway answers for a legacy caller.
MAX_INPUT_ROUNDS = 8
# What a modern result carries for its own hop only; the gateway sets its own for the next one.
_HOP_FIELDS = ("resultType", "ttlMs", "cacheScope")
Listener = Callable[[dict[str, Any]], None]
_USES_REQUEST = re.compile(r"(\{\{|\{%)[^}%]*\brequest\b")
_USES_SECRETS = re.compile(r"(\{\{|\{%)[^}%]*\bsecrets\b")  # the caller's own secrets: per-request too


def _error_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": redact_text(text)}], "isError": True}  # URLs may hold secrets


def _hop_free(result: dict[str, Any]) -> dict[str, Any]:
    """A modern upstream's result without what belongs to its hop: ``resultType``, cache hints, reserved ``_meta``."""
    out = {k: v for k, v in result.items() if k not in _HOP_FIELDS}
    meta = out.get("_meta")
    if isinstance(meta, dict):
        kept = {k: v for k, v in meta.items() if not str(k).startswith(RESERVED_META_PREFIX)}
        if kept:
            out["_meta"] = kept
        else:
            out.pop("_meta")
    return out


def _modern_caller(ctx: CallContext | None) -> bool:
    return ctx is not None and ctx.protocol_version == MODERN_VERSION


def _retry_params(ctx: CallContext | None) -> dict[str, Any]:
    """A modern caller's MRTR retry as params for a modern upstream: ``inputResponses`` and its own ``requestState``."""
    if not _modern_caller(ctx):
        return {}
    extra: dict[str, Any] = {}
    if ctx.input_responses is not None:
        extra["inputResponses"] = ctx.input_responses
    if ctx.request_state is not None:
        extra["requestState"] = ctx.request_state
    return extra


def _input_required(result: dict[str, Any]) -> dict[str, Any]:
    """A modern upstream's ``input_required`` answer, keeping what the gateway relays (its hop's ``_meta`` dropped)."""
    out: dict[str, Any] = {"resultType": "input_required"}
    for key in ("inputRequests", "requestState"):
        if result.get(key) is not None:
            out[key] = result[key]
    meta = _hop_free({"_meta": result.get("_meta")}).get("_meta") if isinstance(result.get("_meta"), dict) else None
    if meta:
        out["_meta"] = meta
    return out


def _held_link(link: _Link) -> bool:
    """Whether ``link`` is a legacy upstream session of a modern caller's principal (its calls are held)."""
    return not link.client.modern and isinstance(link.key, tuple) and link.key[:1] == ("held",)


def _principal(ctx: CallContext) -> str:
    """Who a held call belongs to: the caller's API key id or token subject ("" on an open router)."""
    return f"key:{ctx.key_id}" if ctx.key_id is not None else (f"sub:{ctx.user}" if ctx.user else "")


def _trace_meta(ctx: CallContext | None) -> dict[str, Any]:
    """The W3C trace context the client sent (``traceparent``, ``tracestate``), for the upstream's ``_meta``."""
    headers = ctx.headers if ctx is not None else {}
    return {k: headers[k] for k in ("traceparent", "tracestate") if headers.get(k)}


def _bounded(connect: Callable[[], Any], deadline: float, what: str) -> Any:
    """Run ``connect`` but stop waiting at ``deadline``; the connection completes in the background for later calls."""
    done = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = connect()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, daemon=True, name="upstream-connect").start()
    if not done.wait(max(0.0, deadline - time.monotonic())):
        raise McpTimeout(f"{what} takes longer than the call may wait")
    if "error" in box:
        raise box["error"]
    return box["value"]


class _NeedsInput(Exception):
    """A modern upstream's ``input_required`` that the gateway cannot answer for a legacy caller."""


class _Link:
    """An upstream session owned by some downstream sessions (or by everyone: the shared link)."""

    def __init__(self, key: Any, client: McpClient):
        self.key = key
        self.client = client
        self.last_used = time.monotonic()
        self.active: dict[Any, CallContext] = {}
        self.notify: Callable[[dict[str, Any]], None] | None = None
        self.request: Callable[..., dict[str, Any]] | None = None

    def touch(self, ctx: CallContext | None) -> None:
        self.last_used = time.monotonic()
        if ctx is not None:
            if ctx.notify is not None:
                self.notify = ctx.notify
            if getattr(ctx, "request", None) is not None:
                self.request = ctx.request


class UpstreamServer:
    """A backend for one ``mcpServers`` entry of a config document.

    ``spec`` is the entry: a :class:`~mcpgw_sdk.config_model.McpServer` or its dict (``type``,
    ``command``/``args``/``env`` or ``url``/``headers``, ``policy``, ``allowedTools``/``deniedTools``,
    ``timeout``; absent keys take the model's defaults); ``server`` is accepted as its alias.
    ``onStart`` connects in the background at construction and reconnects (restarting a stdio
    process) with exponential backoff; ``onDemand`` (the default) connects at first use and
    closes after ``idle_timeout`` seconds without calls.

    >>> up = UpstreamServer(name="files", spec={"type": "stdio", "command": "python",  # doctest: +SKIP
    ...                                            "args": ["server.py"], "policy": "onDemand"})
    >>> up.call_tool("echo", {"text": "hi"}, CallContext())["content"]  # doctest: +SKIP
    """

    idle_timeout: float = 300.0
    connect_timeout: float = 30.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    grace: float = 5.0
    list_wait: float = 5.0
    max_links: int = 64
    stable_after: float = 10.0

    def __init__(self, *, name: str, spec: McpServer | dict[str, Any] | None = None,
                 server: McpServer | dict[str, Any] | None = None, document: dict[str, Any] | None = None,
                 start: bool = True, settings: Settings | None = None):
        given = spec if spec is not None else server
        entry = given if isinstance(given, McpServer) else McpServer.from_dict(given or {})
        self.entry = entry
        self.name = name
        settings = settings if settings is not None else resolve()
        # Held calls (a legacy upstream asking a modern caller): how long each waits, how many may wait.
        self.held_call_timeout = float(settings.held_call_timeout)
        self.held_limits = {"total": int(settings.max_held_calls),
                            "per_principal": int(settings.max_held_calls_per_principal)}
        self.document = document or {}
        where = f"mcpServers[{name}]"
        self.type = entry.type
        if self.type not in MCP_TYPES:
            raise ConfigError(f"{where}.type: {self.type!r} is not one of {', '.join(MCP_TYPES)}")
        self.policy = entry.policy
        if self.policy not in POLICIES:
            raise ConfigError(f"{where}.policy: {self.policy!r} is not one of {', '.join(POLICIES)}")
        if self.type == "stdio" and not entry.command:
            raise ConfigError(f"{where}.command: required for a stdio server")
        if self.type != "stdio" and not entry.url:
            raise ConfigError(f"{where}.url: required for a {self.type} server")
        try:
            self.timeout = float(entry.timeout)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}.timeout: {entry.timeout!r} is not a number of seconds") from None
        self.allowed = None if entry.allowed_tools is None else set(entry.allowed_tools)
        self.denied = set(entry.denied_tools)
        # Not a document key (validation refuses it): embedders and tests give upstream templates a config.
        self.config = {k: str(v) for k, v in ((entry.raw or {}).get("config") or {}).items()}
        self._templates = {
            "env": {k: compile_template(str(v), field=f"{where}.env.{k}") for k, v in entry.env.items()},
            "headers": {k: compile_template(str(v), field=f"{where}.headers.{k}") for k, v in entry.headers.items()},
        }
        self._url = compile_template(str(entry.url or ""), field=f"{where}.url")
        texts = [str(v) for v in entry.env.values()] + [str(v) for v in entry.headers.values()] + [str(entry.url or "")]
        # tokenExchange (RFC 8693): each caller's OAuth token is traded for one meant for this upstream.
        self.exchange = TokenExchange(entry.token_exchange, server=name) \
            if entry.token_exchange is not None and self.type != "stdio" else None
        # Credentials taken from the client's request (or exchanged for it) cannot ride a session other
        # clients share.
        self.per_request = self.exchange is not None or any(
            _USES_REQUEST.search(text) or _USES_SECRETS.search(text) for text in texts)
        self.tenant = (self.document.get("tenant") if isinstance(self.document, dict) else None) or NO_TENANT
        self.era_mode = str(entry.era)
        if self.era_mode not in ERAS or (self.type == "sse" and self.era_mode == MODERN_VERSION):
            raise ConfigError(f"{where}.era: {self.era_mode!r} is not one of "
                              f"{', '.join(ERAS if self.type != 'sse' else ('auto', 'legacy'))}")
        #: ``modern`` or ``legacy`` once the upstream was classified (``None``: not yet, or again after a failure).
        self.era: str | None = None
        self.literal_hosts = self._literal_authorities()

        self._lock = threading.RLock()
        self._connect_lock = threading.Lock()
        self._shared: _Link | None = None
        # The shared legacy session of a modern (dual-era) upstream, for legacy clients that answer callbacks.
        self._legacy: _Link | None = None
        self._listening: Any = None
        # Resource subscriptions of this worker's subscriptions/listen streams, held by ONE holder per upstream:
        # a legacy session of its own (``_holder``) or a modern upstream listen stream (``_resource_listen``).
        self._watched: dict[str, dict[Any, Callable[[dict[str, Any]], None]]] = {}
        self._watch_lock = threading.Lock()
        self._sync_lock = threading.Lock()
        self._holder: _Link | None = None
        self._resource_listen: tuple[_Link, Any] | None = None
        self._resource_ack: threading.Event | None = None
        #: Set once a modern upstream acknowledged the stream that follows its list changes (tests wait on it).
        self.lists_followed = threading.Event()
        self._subscribed: set[str] = set()  # the URIs the holder has subscribed upstream
        self._links: dict[Any, _Link] = {}
        self._inflight: dict[tuple[Any, Any], tuple[McpClient, Any]] = {}
        self._listeners: list[Listener] = []
        self._served_empty: set[str] = set()
        self._key_locks: dict[Any, threading.Lock] = {}
        self._cache: dict[str, list[dict[str, Any]] | None] = {"tools": None, "prompts": None, "resources": None,
                                                              "resourceTemplates": None}
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads_started = False
        self._state = "stopped"
        self._connected_at = 0.0
        self.last_error: str | None = None
        self.restarts = 0
        self.capabilities_seen: dict[str, Any] = {}
        # A template that can never render (env() of a name not allowed) fails this server, not its document.
        env_allowed = frozenset(settings.template_env)
        self._broken = next(filter(None, (forbidden_env(str(v), field=f"{where}.{part}.{k}", allowed=env_allowed)
                                          for part in ("env", "headers")
                                          for k, v in getattr(entry, part).items())), None) \
            or forbidden_env(str(entry.url or ""), field=f"{where}.url", allowed=env_allowed)
        if self._broken:
            self._state, self.last_error = "failed", self._broken
            log.warning("upstream %s: %s", self.name, self._broken)
        if start and self.policy == "onStart":
            self.start()

    def __repr__(self) -> str:
        return f"<UpstreamServer {self.name} {self.type} {self._state}>"

    # ------------------------------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> str:
        """``connecting``, ``ready``, ``failed`` or ``stopped`` (see :attr:`last_error` and :attr:`restarts`)."""
        return self._state

    @property
    def first_connect_pending(self) -> bool:
        """True while the very first connection is under way (never connected, never failed)."""
        return self._state == "connecting" and not self._connected_at and self.last_error is None

    def status(self) -> dict[str, Any]:
        """State, last error, restarts, process id, per-session upstream sessions, calls in flight (/readyz).

        ``era`` is the classification (``modern``, ``legacy`` or ``None``); ``upstream_session``
        whether a shared upstream session (``Mcp-Session-Id``) is open.
        """
        shared = self._shared
        links = list(self._links.values()) + [link for link in (shared, self._legacy) if link]
        return {"server": self.name, "type": self.type, "policy": self.policy, "state": self._state,
                "last_error": self.last_error, "restarts": self.restarts,
                "pid": shared.client.pid if shared else None, "sessions": len(self._links),
                "calls": sum(len(link.active) for link in links), "era": self.era,
                "upstream_session": bool(shared and shared.client.session_id)
                or bool(self._legacy and self._legacy.client.session_id)}

    def start(self) -> None:
        """Start the background work: the connect/reconnect supervisor (onStart) and the idle reaper."""
        with self._lock:
            if self._threads_started or self._stop.is_set() or self._broken:
                return
            self._threads_started = True
            if self.policy == "onStart":
                self._state = "connecting"
                threading.Thread(target=self._supervise, daemon=True, name=f"upstream-{self.name}").start()
            threading.Thread(target=self._reap, daemon=True, name=f"upstream-reaper-{self.name}").start()

    def close(self) -> None:
        """Stop every upstream session and process (SIGTERM, then SIGKILL after :attr:`grace`)."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            links = list(self._links.values()) + [link for link in (self._shared, self._legacy, self._holder) if link]
            self._links.clear()
            self._shared = self._legacy = self._holder = None
        self._set_state("stopped")
        for link in links:
            link.client.close()

    def _supervise(self) -> None:
        delay = self.backoff_initial
        while not self._stop.is_set():
            if self._shared is None:
                try:
                    self._connect_shared()
                except Exception:  # noqa: BLE001 - recorded by _connect_shared; retried after a pause
                    if self._stop.wait(delay):
                        return
                    delay = min(delay * 2, self.backoff_max)
                    self._set_state("connecting")
                    continue
            self._wake.wait()
            self._wake.clear()
            if self._stop.is_set():
                return
            # A server that dies soon after starting is restarted with a growing pause, not in a tight loop.
            if time.monotonic() - self._connected_at < self.stable_after:
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff_max)
            else:
                delay = self.backoff_initial

    def _reap(self) -> None:
        while not self._stop.wait(min(max(self.idle_timeout / 4, 0.05), 5.0)):
            now = time.monotonic()
            with self._lock:
                idle = [link for link in self._links.values()
                        if not link.active and now - link.last_used > self.idle_timeout]
                for link in idle:
                    self._links.pop(link.key, None)
                    self._key_locks.pop(link.key, None)
                legacy = self._legacy
                if legacy is not None and not legacy.active and now - legacy.last_used > self.idle_timeout:
                    self._legacy = None
                    idle.append(legacy)
                shared = self._shared
                if (self.policy == "onDemand" and shared is not None and not shared.active
                        and now - shared.last_used > self.idle_timeout):
                    self._shared = None
                    self._state = "stopped"
                    idle.append(shared)
            for link in idle:
                log.info("upstream %s: closing an idle session", self.name)
                link.client.close()

    def _failed(self, exc: BaseException, state: str = "failed") -> None:
        self.last_error = redact_text(f"{type(exc).__name__}: {exc}" if not isinstance(exc, McpgwError) else str(exc))
        log.warning("upstream %s: %s", self.name, self.last_error)
        self._set_state(state)

    def _set_state(self, state: str) -> None:
        with self._changed:
            self._state = state
            self._changed.notify_all()

    # ------------------------------------------------------------------------------------------ connections

    #: The outbound guard of this server's connections (the process-wide one unless a test sets its own).
    guard: Guard | None = None

    def _literal_authorities(self) -> frozenset[Authority]:
        """Authorities the upstream ``url`` may name when they are loopback/private.

        Those written in the document (and this entry's ``url`` and ``config``) and the one
        the ``url`` renders to with no client request data (``config`` and ``env()`` are the
        operator's). A URL rendered from the client's request is trusted only when it equals one.
        """
        texts = document_texts(self.document) + [str(self.entry.url or "")] + list(self.config.values())
        found = set(authorities(texts))
        try:
            url = self._url.render({"config": self.config, "request": request_context({}, {}, {})}).strip()
        except Exception:  # noqa: BLE001 - a URL that needs the client's request has no authority of its own
            url = ""
        authority = url_authority(url)
        # "http://{{ request.headers.host }}:8080" renders an empty host; "http://h:{{ x }}" an empty port.
        if authority is not None and not url.split("://", 1)[-1].split("/", 1)[0].endswith(":"):
            found.add(authority)
        return frozenset(found)

    def _render(self, ctx: CallContext | None) -> tuple[str, dict[str, str], dict[str, str]]:
        seen = ctx.headers if ctx else {}
        if self.exchange is not None:  # the caller's own credential reaches no template of this upstream
            seen = without_credentials(seen)
        context = {"config": self.config,
                   "request": request_context(seen, ctx.query if ctx else {}, ctx.cookies if ctx else {}),
                   "secrets": credentials.view(ctx, self.tenant)}
        env = {k: t.render(context) for k, t in self._templates["env"].items()}
        headers = {k: t.render(context) for k, t in self._templates["headers"].items()}
        if self.exchange is not None and ctx is not None:
            # A caller's connection carries the exchanged token (ExchangeFailed says why not); the shared
            # one (ctx None, used to list tools) carries none.
            name, value = self.exchange.header(ctx.subject_token, deadline=ctx.deadline)
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            headers[name] = value
        return self._url.render(context), env, headers

    def _open(self, ctx: CallContext | None, *, key: Any, capabilities: dict[str, Any], mode: str | None = None,
              ) -> _Link:
        """Connect a new upstream session (a process for stdio) rendered for ``ctx``.

        ``mode`` is the client's era (default: the classification, else the configured ``era``).
        """
        url, env, headers = self._render(ctx)
        target = self.entry.command if self.type == "stdio" else url
        # Every HTTP connection (the url, an SSE endpoint it announces) is checked after DNS resolution.
        connector = None if self.type == "stdio" else (self.guard or default_guard()).connector(self.literal_hosts)
        client = McpClient(target, transport=self.type, headers=headers, env=env,
                           args=[str(a) for a in self.entry.args],
                           timeout=max(self.timeout, self.connect_timeout),
                           client_capabilities=capabilities, name=self.name, grace=self.grace,
                           client_info={"name": f"mcpgw/{self.name}", "version": "1"}, connector=connector,
                           mode=mode or self._mode())
        link = _Link(key, client)
        client.on_notification = lambda msg: self._on_notification(link, msg)
        client.on_request = lambda msg: self._on_request(link, msg)
        client.on_close = lambda exc: self._on_close(link, exc)
        client.connect()
        return link

    def _mode(self) -> str:
        """The era to connect in: the one classified, else the configured one (``auto`` probes)."""
        if self.era_mode != "auto":
            return self.era_mode
        return {"modern": MODERN_VERSION, "legacy": "legacy"}.get(self.era or "", "auto")

    def _connect_shared(self) -> _Link:
        with self._connect_lock:
            if self._shared is not None and not self._shared.client.closed:
                return self._shared
            if self._stop.is_set():
                raise McpConnectionError(f"upstream {self.name} is stopped")
            if self._broken:
                raise McpConnectionError(self._broken)
            self._set_state("connecting")
            try:
                link = self._open(None, key=None, capabilities=dict(SHARED_CAPABILITIES))
            except Exception as exc:
                self._failed(exc)
                raise
            with self._lock:
                if self._stop.is_set():
                    link.client.close()
                    raise McpConnectionError(f"upstream {self.name} is stopped")
                self._shared = link
                self._connected_at = link.last_used = time.monotonic()
                self.capabilities_seen = link.client.server_capabilities
                self.era = link.client.era
                self.last_error = None
                self._set_state("ready")
            log.info("upstream %s: connected (%s, %s, protocol %s)", self.name, self.type, link.client.era,
                     link.client.protocol_version)
        if link.client.modern:
            self._listen(link)
        if self._watched:  # a new connection: subscribe again what listen streams watch
            self._resync_later(0.0)
        threading.Thread(target=self._refresh_all, daemon=True, name=f"upstream-refresh-{self.name}").start()
        return link

    def _listen(self, link: _Link) -> None:
        """Follow a modern upstream's list changes on a ``subscriptions/listen`` stream (re-opened when it ends)."""
        caps = link.client.server_capabilities
        wanted = {flag: True for flag, kind in (("toolsListChanged", "tools"), ("promptsListChanged", "prompts"),
                                                ("resourcesListChanged", "resources"))
                  if isinstance(caps.get(kind), dict) and caps[kind].get("listChanged")}
        if not wanted:
            return

        def ended(answer: dict[str, Any] | None) -> None:
            error = (answer or {}).get("error") or {}
            if self._stop.is_set() or link is not self._shared or link.client.closed or error.get("code") == -32601:
                return
            data = error.get("data")
            if isinstance(data, dict) and data.get("mcpgw") == "transport":
                # The upstream went away: connect (and classify) again, with the supervisor's backoff.
                self._reclassify(link, McpConnectionError(str(error.get("message"))))
                return
            if not self._stop.wait(1.0) and link is self._shared:
                self._listen(link)
                self._refresh_all()  # what changed while no stream was open

        try:
            self._listening = link.client.listen(wanted, lambda msg: self._on_notification(None, msg), on_end=ended)
        except McpError as exc:
            log.info("upstream %s: no subscriptions/listen stream: %s", self.name, exc)

    def _reclassify(self, link: _Link, exc: BaseException) -> None:
        """A modern call failed at the transport or version level: forget the era, connect (and probe) again."""
        with self._lock:
            if link is not self._shared:
                return
            self._shared = None
            self.era = None
            self.restarts += 1
            self._failed(exc, "connecting" if self.policy == "onStart" and not self._stop.is_set() else "failed")
            self._wake.set()
        link.client.close()

    def _on_close(self, link: _Link | None, exc: BaseException) -> None:
        if link is not None and link is self._holder:
            self._holder_lost(link, exc)
            return
        with self._lock:
            if link is not None and link is self._legacy:
                self._legacy = None
            elif link is not None and link is self._shared:
                self._shared = None
                self.era = None  # probe again on reconnect
                self.restarts += 1
                self._failed(exc, "connecting" if self.policy == "onStart" and not self._stop.is_set() else "failed")
                self._wake.set()
            elif link is not None:
                self._links.pop(link.key, None)

    def _shared_link(self, deadline: float) -> _Link:
        if self.policy == "onDemand":
            link = self._shared
            if link is None or link.client.closed:
                link = _bounded(self._connect_shared, deadline, f"connecting to upstream {self.name}")
            return link
        if not self._threads_started:
            self.start()
        with self._changed:
            # Wait for a connection underway; give up at once when the last attempt failed (backoff).
            while self._shared is None and self._state != "failed" and not self._stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        link = self._shared
        if link is None:
            raise McpConnectionError(f"upstream {self.name} is not connected"
                                     + (f": {self.last_error}" if self.last_error else ""))
        return link

    def _link_for(self, ctx: CallContext, deadline: float, *, stateful: bool = False) -> _Link:
        """The upstream session to use for ``ctx``: the shared one, or one of the downstream session's own.

        On a modern upstream the shared link is stateless; a legacy client able to answer
        callbacks gets the shared legacy session instead, and stateful calls a legacy session.
        """
        caps = getattr(ctx, "client_capabilities", None) or {}
        callbacks = {k: caps[k] for k in CALLBACK_CAPABILITIES if k in caps} \
            if getattr(ctx, "request", None) is not None else {}
        # A legacy caller's callbacks go to a legacy session of a dual-era upstream, unless the upstream is
        # pinned modern (``era: 2026-07-28``): then its ``input_required`` rounds are bridged (_ask_legacy).
        wants_legacy = bool(callbacks) and not _modern_caller(ctx) and self.era_mode != MODERN_VERSION
        if self.per_request:
            url, env, headers = self._render(ctx)
            # The URL too: clients whose request picks another upstream host must not share a session.
            digest = hashlib.sha256(json.dumps([url, env, headers], sort_keys=True).encode()).hexdigest()
            key: Any = ("session", ctx.session_id) if stateful and ctx.session_id else ("auth", digest)
            if key[0] == "auth" and wants_legacy and self.era == "modern":
                key = ("auth", digest, "legacy")
        elif stateful and ctx.session_id:
            key = ("session", ctx.session_id)
        else:
            if not self._threads_started and self.policy == "onDemand":
                self.start()
            link = self._shared_link(deadline)
            if wants_legacy and link.client.modern:
                return self._legacy_link(deadline)
            if not (callbacks and _modern_caller(ctx) and not link.client.modern):
                return link
            # A modern caller able to answer a legacy upstream's server→client requests: its calls are held
            # (_call_held) on a legacy session of its principal's, not on the shared one.
            key = ("held", ctx.key_id if ctx.key_id is not None else ctx.user, tuple(sorted(callbacks)))
        with self._lock:
            link = self._links.get(key)
        if link is not None and not link.client.closed:
            return link
        with self._lock:
            if len(self._links) >= self.max_links and not self.per_request:
                log.warning("upstream %s: %d sessions open; using the shared one", self.name, len(self._links))
                return self._shared_link(deadline)
        if not self._threads_started:
            self.start()
        capabilities = callbacks if key[0] in ("session", "held") else dict(SHARED_CAPABILITIES)
        # Subscriptions and log levels exist in the legacy era only.
        mode = "legacy" if key[0] in ("session", "held") or key[-1] == "legacy" else None
        return _bounded(lambda: self._create_link(ctx, key, capabilities, mode), deadline,
                        f"connecting to upstream {self.name}")

    def _legacy_link(self, deadline: float) -> _Link:
        """The shared legacy session of a modern upstream (opened on first use, closed when idle)."""
        link = self._legacy
        if link is not None and not link.client.closed:
            return link

        def connect() -> _Link:
            with self._connect_lock:
                if self._legacy is not None and not self._legacy.client.closed:
                    return self._legacy
                opened = self._open(None, key=("legacy",), capabilities=dict(SHARED_CAPABILITIES), mode="legacy")
                with self._lock:
                    if self._stop.is_set():
                        opened.client.close()
                        raise McpConnectionError(f"upstream {self.name} is stopped")
                    self._legacy = opened
                    opened.last_used = time.monotonic()
                return opened

        return _bounded(connect, deadline, f"opening a legacy session on upstream {self.name}")

    def _create_link(self, ctx: CallContext, key: Any, callbacks: dict[str, Any], mode: str | None = None,
                     ) -> _Link:
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one connect per key: concurrent first calls of a session share it
            with self._lock:
                link = self._links.get(key)
            if link is not None and not link.client.closed:
                return link
            link = self._open(ctx, key=key, capabilities=callbacks, mode=mode)
            with self._lock:
                if self._stop.is_set():
                    link.client.close()
                    raise McpConnectionError(f"upstream {self.name} is stopped")
                self._links[key] = link
                # Idle time counts from now, not from before a slow connect: the reaper must
                # not close a session before its first call.
                link.last_used = time.monotonic()
                self.capabilities_seen = self.capabilities_seen or link.client.server_capabilities
                if mode is None:
                    self.era = self.era or link.client.era
                unlisted = self._shared is None and self._cache["tools"] is None
            if unlisted:
                # The shared session could not list (e.g. the upstream wants the client's credentials).
                threading.Thread(target=self._refresh_all, daemon=True, name=f"upstream-refresh-{self.name}").start()
            return link

    def session_closed(self, session_id: str) -> None:
        """The downstream session ended: close the upstream session it owned, if any."""
        with self._lock:
            link = self._links.pop(("session", session_id), None)
            self._key_locks.pop(("session", session_id), None)
        if link is not None:
            link.client.close()

    def session_ids(self) -> list[str]:
        """Downstream session ids that own an upstream session here (the gateway closes those that expired)."""
        with self._lock:
            return [key[1] for key in self._links if isinstance(key, tuple) and key[:1] == ("session",)]

    # ------------------------------------------------------------------------------------------ resource subscriptions

    @property
    def subscribable(self) -> bool:
        """Whether listen streams may watch this upstream's resources: it offers ``resources.subscribe``
        (and its connection does not render from a client's request, which a shared holder has not)."""
        resources = (self.capabilities_seen or {}).get("resources")
        return not self.per_request and isinstance(resources, dict) and bool(resources.get("subscribe"))

    def watch_resources(self, uris: list[str], callback: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Run ``callback(params)`` for each ``notifications/resources/updated`` of one of ``uris``.

        Every watcher of this worker shares one holder: a legacy upstream's own session that
        ``resources/subscribe``s each watched URI once (``resources/unsubscribe`` when its last
        watcher goes), or a modern upstream's ``subscriptions/listen`` stream with
        ``resourceSubscriptions`` (opened again when the set changes). Subscribes before returning;
        upstream failures are logged. Returns the function that stops watching.
        """
        token = object()
        uris = list(dict.fromkeys(uris))
        with self._watch_lock:
            for uri in uris:
                self._watched.setdefault(uri, {})[token] = callback
        self._sync_watch()

        def unwatch() -> None:
            with self._watch_lock:
                for uri in uris:
                    held = self._watched.get(uri)
                    if held is not None and held.pop(token, None) is not None and not held:
                        del self._watched[uri]
            self._sync_watch()

        return unwatch

    def _resource_updated(self, msg: dict[str, Any]) -> None:
        """Fan an upstream ``notifications/resources/updated`` out to the watchers of its URI."""
        params = msg.get("params") or {}
        with self._watch_lock:
            callbacks = list((self._watched.get(params.get("uri")) or {}).values())
        update = {k: v for k, v in params.items() if k != "_meta"}  # the upstream's subscription id stays here
        for callback in callbacks:
            try:
                callback(update)
            except Exception:  # noqa: BLE001 - one watcher must not break the others
                log.exception("upstream %s: a resource watcher failed", self.name)

    def _sync_watch(self) -> None:
        """Subscribe upstream what is watched and no more (one sync at a time; failures are logged)."""
        if self._stop.is_set():
            return
        with self._sync_lock:
            with self._watch_lock:
                wanted = set(self._watched)
            if wanted == self._subscribed:
                return
            try:
                link = self._shared_link(time.monotonic() + self.timeout)
                if link.client.modern:
                    self._sync_modern(link, wanted)
                else:
                    self._sync_legacy(wanted)
            except Exception as exc:  # noqa: BLE001 - a listen stream is served without its updates
                log.warning("upstream %s: resource subscriptions failed: %s", self.name, exc)

    def _sync_legacy(self, wanted: set[str]) -> None:
        holder = self._holder
        if holder is None or holder.client.closed:
            self._subscribed = set()
            if not wanted:
                return
            holder = _bounded(lambda: self._open(None, key=("subscriptions",), capabilities={}, mode="legacy"),
                              time.monotonic() + self.timeout, f"opening a subscription session on {self.name}")
            with self._lock:
                if self._stop.is_set():
                    holder.client.close()
                    return
                self._holder = holder
        for verb, uris in (("unsubscribe", self._subscribed - wanted), ("subscribe", wanted - self._subscribed)):
            for uri in sorted(uris):
                try:
                    holder.client.request(f"resources/{verb}", {"uri": uri}, timeout=self.timeout)
                except McpError as exc:
                    log.warning("upstream %s: resources/%s %s: %s", self.name, verb, uri, exc)
                    if verb == "subscribe":
                        continue
                (self._subscribed.add if verb == "subscribe" else self._subscribed.discard)(uri)
        if not wanted:  # the last watcher went: the session is not kept open for nothing
            with self._lock:
                if self._holder is holder:
                    self._holder = None
            holder.client.close()

    def _sync_modern(self, link: _Link, wanted: set[str]) -> None:
        old, self._resource_listen, self._subscribed = self._resource_listen, None, set()
        if old is not None and not old[0].client.closed:
            try:
                old[0].client.cancel(old[1], "the watched resources changed")
            except McpError:
                pass
        if not wanted:
            return
        acked = self._resource_ack = threading.Event()
        mine: list[Any] = []

        def on_message(msg: dict[str, Any]) -> None:
            if msg.get("method") == "notifications/subscriptions/acknowledged":
                acked.set()
            elif msg.get("method") == "notifications/resources/updated":
                self._resource_updated(msg)

        def ended(answer: dict[str, Any] | None) -> None:
            if not mine or self._resource_listen is not mine[0] or self._stop.is_set():
                return  # replaced (or never opened)
            self._resource_listen, self._subscribed = None, set()
            self._resync_later(1.0)

        request_id = link.client.listen({"resourceSubscriptions": sorted(wanted)}, on_message, on_end=ended)
        mine.append((link, request_id))
        self._resource_listen, self._subscribed = mine[0], set(wanted)
        if not acked.wait(min(self.timeout, 5.0)):  # updates before the ack would be lost
            log.info("upstream %s: no acknowledgement of the resource listen stream yet", self.name)

    def _resync_later(self, delay: float) -> None:
        def run() -> None:
            if not self._stop.wait(delay):
                self._sync_watch()

        threading.Thread(target=run, daemon=True, name=f"upstream-subscriptions-{self.name}").start()

    def _holder_lost(self, link: _Link, exc: BaseException) -> None:
        """The subscription session closed: open another for what is still watched (after a pause)."""
        with self._lock:
            if link is not self._holder:
                return
            self._holder = None
        self._subscribed = set()
        log.info("upstream %s: the subscription session closed: %s", self.name, exc)
        if self._watched and not self._stop.is_set():
            self._resync_later(1.0)

    # ------------------------------------------------------------------------------------------ messages from upstream

    def _on_notification(self, link: _Link | None, msg: dict[str, Any]) -> None:
        method = msg.get("method", "")
        kind = {"notifications/tools/list_changed": "tools", "notifications/prompts/list_changed": "prompts",
                "notifications/resources/list_changed": "resources"}.get(method)
        if kind is not None:
            threading.Thread(target=self._refresh, args=(kind, True), daemon=True,
                             name=f"upstream-refresh-{self.name}").start()
            return
        if method == "notifications/resources/updated" and (link is None or link is self._holder
                                                             or link is self._shared):
            self._resource_updated(msg)  # the holder's (a modern listen stream's arrive here on stdio)
            return
        if method == "notifications/subscriptions/acknowledged":
            ack = self._resource_ack
            wanted = (msg.get("params") or {}).get("notifications") or {}
            if ack is not None and "resourceSubscriptions" in wanted:
                ack.set()
            if any(flag in wanted for flag in ("toolsListChanged", "promptsListChanged", "resourcesListChanged")):
                self.lists_followed.set()
            return
        if link is None:
            return
        notify = link.notify if link is not self._shared else None
        if notify is None and method == "notifications/message" and len(link.active) == 1:
            # On a shared stdio session a log line can only be told apart when one call is running.
            notify = next(iter(link.active.values())).notify
        if notify is not None and method in ("notifications/message", "notifications/resources/updated"):
            notify(msg)

    def _on_request(self, link: _Link | None, msg: dict[str, Any], ctx: CallContext | None = None,
                    ) -> dict[str, Any]:
        """Forward a server→client request to the client it belongs to."""
        method = msg.get("method", "")
        if method not in ("sampling/createMessage", "elicitation/create", "roots/list"):
            raise McpError(-32601, f"{method} is not forwarded to clients")
        if ctx is not None:
            request = getattr(ctx, "request", None)
        elif link is not None and isinstance(link.key, tuple) and link.key[0] == "session":
            request = link.request
        else:
            # A shared stdio/SSE session does not say which call a request belongs to: it can only go to
            # the one call in flight that has a client able to answer.
            # (A held call whose request awaits the client's retry is blocked: it is not the one asking.)
            able = [c for c in list(link.active.values()) if getattr(c, "request", None) is not None
                    and getattr(getattr(getattr(c, "request", None), "held", None), "asked", None) is None] \
                if link else []
            if len(able) > 1:
                raise McpError(-32603, f"upstream {self.name}: {len(able)} calls in flight; cannot tell which "
                                       f"client should answer {method}")
            request = able[0].request if able else None
        if request is None:
            raise McpError(-32601, f"the client of this call cannot answer {method}")
        return request(method, msg.get("params") or {})

    # ------------------------------------------------------------------------------------------ lists

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback({"type": "tools_changed"|"prompts_changed"|"resources_changed", "server": name})``."""
        with self._lock:
            self._listeners.append(callback)

    def _emit(self, kind: str) -> None:
        event = {"type": f"{kind}_changed", "server": self.name}
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - one listener must not break the others
                log.exception("upstream %s: listener failed", self.name)

    def _refresh_all(self) -> None:
        for kind in ("tools", "prompts", "resources"):
            self._refresh(kind, False)

    def _refresh(self, kind: str, announce: bool) -> None:
        link = self._shared
        if link is None:
            for candidate in list(self._links.values()):
                link = candidate
                break
        if link is None:
            return
        caps = link.client.server_capabilities
        try:
            if kind == "tools":
                fresh = {"tools": link.client.list_tools()} if "tools" in caps else {"tools": []}
            elif kind == "prompts":
                fresh = {"prompts": link.client.list_prompts() if "prompts" in caps else []}
            else:
                has = "resources" in caps
                fresh = {"resources": link.client.list_resources() if has else [],
                         "resourceTemplates": link.client.list_resource_templates() if has else []}
        except McpError as exc:
            log.warning("upstream %s: refreshing %s failed: %s", self.name, kind, exc)
            return
        with self._lock:
            known = all(self._cache.get(key) is not None for key in fresh)
            changed = any((self._cache.get(key) or []) != value for key, value in fresh.items())
            self._cache.update(fresh)
            # The first fetch announces only when a caller was already served an empty list meanwhile.
            missed = kind in self._served_empty
            self._served_empty.discard(kind)
        if changed and (known or missed or announce):
            self._emit(kind)

    def _cached(self, key: str, kind: str) -> list[dict[str, Any]]:
        items = self._cache.get(key)
        if items is None:
            try:
                self._shared_link(time.monotonic() + min(self.list_wait, self.timeout))
            except McpError as exc:
                log.info("upstream %s: %s not listed: %s", self.name, kind, exc)
                self._served_empty.add(kind)
                return []
            self._refresh(kind, False)
            items = self._cache.get(key)
            if items is None:
                self._served_empty.add(kind)
        return list(items or [])

    def _tool_visible(self, name: str) -> bool:
        return (self.allowed is None or name in self.allowed) and name not in self.denied

    def list_tools(self) -> list[dict[str, Any]]:
        """The upstream's tools (cached; refetched on ``list_changed``), after allowedTools/deniedTools."""
        return [t for t in self._cached("tools", "tools") if self._tool_visible(t.get("name", ""))]

    def list_prompts(self) -> list[dict[str, Any]]:
        """The upstream's prompts (cached)."""
        return self._cached("prompts", "prompts")

    def list_resources(self) -> list[dict[str, Any]]:
        """The upstream's resources (cached)."""
        return self._cached("resources", "resources")

    def list_resource_templates(self) -> list[dict[str, Any]]:
        """The upstream's resource templates (cached)."""
        return self._cached("resourceTemplates", "resources")

    @property
    def capabilities(self) -> dict[str, Any]:
        """What this server adds to the gateway's capabilities (from the upstream's own answer)."""
        seen = self.capabilities_seen or {}
        caps: dict[str, Any] = {"tools": {"listChanged": True}}
        if "prompts" in seen:
            caps["prompts"] = {"listChanged": True}
        if "resources" in seen:
            caps["resources"] = {"listChanged": True, "subscribe": bool(seen["resources"].get("subscribe"))}
        for key in ("logging", "completions"):
            if key in seen:
                caps[key] = {}
        return caps

    # ------------------------------------------------------------------------------------------ calls

    def _deadline(self, ctx: CallContext) -> float:
        deadline = time.monotonic() + self.timeout
        return min(deadline, ctx.deadline) if ctx.deadline else deadline

    def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Call the upstream tool; failures (filtered, unreachable, timed out, crashed) are ``isError`` results."""
        if not self._tool_visible(name):
            return _error_result(f"tool {name!r} is not available on {self.name}")
        if ctx.state_upstream is not None and ctx.state_upstream != self.name:
            return _error_result(f"upstream {self.name}: the requestState names upstream {ctx.state_upstream}")
        deadline = self._deadline(ctx)
        for attempt in (1, 2):
            try:
                return self._call_tool_once(name, arguments, ctx, deadline)
            except McpSessionExpired as exc:
                # The server never ran the call (it no longer knew the session): reconnect and send it again.
                if attempt == 2:
                    return _error_result(f"upstream {self.name}: {exc.message}")
        raise AssertionError("unreachable")

    def _call_tool_once(self, name: str, arguments: dict[str, Any], ctx: CallContext,
                        deadline: float) -> dict[str, Any]:
        if _modern_caller(ctx) and (ctx.request_state or "").startswith(held.HELD_PREFIX):
            return self._resume(name, ctx, deadline, tool=True)
        try:
            link = self._link_for(ctx, deadline)
        except McpError as exc:
            return _error_result(f"upstream {self.name} is unavailable: {exc.message}")
        except McpgwError as exc:
            return _error_result(credentials.missing_text(ctx) or f"upstream {self.name}: {exc}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _error_result(f"upstream {self.name}: no time left for {name} (deadline passed)")
        client = link.client
        if _modern_caller(ctx) and _held_link(link):
            return self._call_held(link, name, arguments, ctx, deadline)
        upstream_id = client.next_id()
        token = f"{self.name}-{uuid.uuid4().hex}" if ctx.progress_token is not None else None
        key = (ctx.session_id, ctx.request_id)
        with self._lock:
            link.touch(ctx)
            link.active[upstream_id] = ctx
            if ctx.request_id is not None:
                self._inflight[key] = (client, upstream_id)
        try:
            if client.closed:
                # Reaped as idle between lookup and use: the call was never sent, so send it on a new session.
                raise McpSessionExpired(f"upstream {self.name}: idle session closed")
            extra = _retry_params(ctx) if client.modern else None
            for rounds in range(MAX_INPUT_ROUNDS + 1):
                result = client.call_tool(name, arguments, progress_token=token,
                                          timeout=max(0.001, deadline - time.monotonic()), request_id=upstream_id,
                                          on_message=lambda msg: self._call_message(link, ctx, msg),
                                          on_request=lambda msg: self._on_request(link, msg, ctx),
                                          meta=self._call_meta(client, ctx) or None,
                                          client_capabilities=self._declared(ctx), extra=extra)
                if not client.modern:
                    return result
                if result.get("resultType") != "input_required":
                    return _hop_free(result)
                if _modern_caller(ctx):  # relayed: the core seals this upstream's name and state for the client
                    ctx.input_upstream = self.name
                    return _input_required(result)
                # A legacy caller: ask it over its session, then retry with its answers (a new upstream id).
                extra = self._ask_legacy(ctx, name, result, deadline, rounds)
                with self._lock:
                    if ctx.request_id is not None and key not in self._inflight:
                        return _error_result(f"upstream {self.name}: {name} was cancelled")
                    link.active.pop(upstream_id, None)
                    upstream_id = client.next_id()
                    link.active[upstream_id] = ctx
                    if ctx.request_id is not None:
                        self._inflight[key] = (client, upstream_id)
            raise AssertionError("unreachable")  # _ask_legacy refuses the round after the last
        except _NeedsInput as exc:
            return _error_result(str(exc))
        except McpTimeout:
            return _error_result(f"upstream {self.name}: {name} did not answer within {remaining:.3g}s")
        except McpSessionExpired:
            raise
        except McpConnectionError as exc:
            if client.modern:
                self._reclassify(link, exc)
            return _error_result(f"upstream {self.name}: connection lost during {name}: {exc.message}")
        except McpError as exc:
            self._modern_error(link, ctx, exc)
            if exc.code == -32602 and client.modern and _retry_params(ctx):
                # The upstream refused the retry's inputResponses or its own requestState: a protocol error.
                raise InputRefused(exc.code, f"upstream {self.name}: {exc.message}", exc.data) from None
            return _error_result(f"upstream {self.name}: {name} failed: {exc.message} (code {exc.code})")
        finally:
            with self._lock:
                link.active.pop(upstream_id, None)
                link.last_used = time.monotonic()
                if self._inflight.get(key, (None, None))[1] == upstream_id:
                    self._inflight.pop(key, None)

    # -- a legacy upstream's server→client requests for a modern caller: held calls (docs/eras.md, MRTR) --------

    def _call_held(self, link: _Link, name: str, arguments: dict[str, Any], ctx: CallContext,
                   deadline: float) -> dict[str, Any]:
        """``tools/call`` held for a modern caller; failures are tool errors (``isError``)."""
        def send(upstream_id: Any, on_request: Callable[..., dict[str, Any]], timeout: float) -> dict[str, Any]:
            return link.client.call_tool(name, arguments, request_id=upstream_id, on_message=lambda msg: None,
                                         on_request=on_request, meta=_trace_meta(ctx) or None, timeout=timeout)

        return self._hold(link, ctx, deadline, name, send, tool=True)

    def _hold(self, link: _Link, ctx: CallContext, deadline: float, what: str,
              send: Callable[[Any, Callable[..., dict[str, Any]], float], dict[str, Any]], *,
              tool: bool) -> dict[str, Any]:
        """Run ``send`` in a thread of its own; the upstream's first server→client request becomes ``input_required``.

        ``tool``: failures are ``isError`` results (``tools/call``); otherwise :class:`McpError`
        (``prompts/get``, ``resources/read``), raised here or by the retry that meets them.
        """
        principal = _principal(ctx)
        refused = held.refusal(principal, **self.held_limits)
        if refused is not None:
            if tool:
                return _error_result(f"upstream {self.name}: {what} refused: {refused}")
            raise McpError(-32603, f"upstream {self.name}: {what} refused: {refused}")
        call = held.Held(self.name, self.held_call_timeout, principal)
        client = link.client
        upstream_id = client.next_id()
        declared = {k for k in CALLBACK_CAPABILITIES if k in (ctx.client_capabilities or {})}
        first_request = ctx.request

        def on_request(msg: dict[str, Any]) -> dict[str, Any]:
            method = msg.get("method", "")
            if _INPUT_KINDS.get(method) not in declared:  # refused: -32021 for the caller's first request
                return self._on_request(None, msg, CallContext(request=first_request))
            params = dict(msg.get("params") or {})
            if isinstance(params.get("_meta"), dict):
                params = _hop_free(params)
            return call.ask(method, params)

        def expired() -> None:
            try:
                client.cancel(upstream_id, "the client did not answer in time (held call expired)")
            except McpError:
                pass

        def failure(text: str, code: int = -32603) -> dict[str, Any] | McpError:
            return _error_result(text) if tool else McpError(code, text)

        def run() -> None:
            outcome: dict[str, Any] | McpError
            try:
                outcome = send(upstream_id, on_request, self.timeout + call.ttl * (MAX_INPUT_ROUNDS + 1))
            except McpTimeout:
                outcome = failure(f"upstream {self.name}: {what} did not answer in time")
            except McpError as exc:
                outcome = failure(f"upstream {self.name}: {what} failed: {exc.message} (code {exc.code})", exc.code)
            except Exception as exc:  # noqa: BLE001 - the caller's retry reports it
                outcome = failure(f"upstream {self.name}: {what} failed: {exc}")
            finally:
                with self._lock:
                    link.active.pop(upstream_id, None)
                    link.last_used = time.monotonic()
            call.finish(outcome)

        call.on_expiry = expired
        # A stdio/SSE session's server→client requests reach the link, not the call: routed by link.active.
        def routed_request(method: str, params: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
            return on_request({"method": method, "params": params})

        routed_request.held = call  # type: ignore[attr-defined]  # waiting on the client: not the asker (_on_request)
        routed = CallContext(protocol_version=ctx.protocol_version, client_capabilities=ctx.client_capabilities,
                             request=routed_request)
        with self._lock:
            link.touch(ctx)
            link.active[upstream_id] = routed
        threading.Thread(target=run, daemon=True, name=f"upstream-held-{self.name}").start()
        return self._held_answer(held.next_turn(call, self.name, what, deadline), ctx, tool=tool)

    def _held_answer(self, turn: dict[str, Any] | McpError, ctx: CallContext, *, tool: bool) -> dict[str, Any]:
        """A held call's turn for the caller: its result, ``input_required`` (sealed by the core), or its error."""
        if isinstance(turn, McpError):
            if tool:
                return _error_result(turn.message)
            raise turn
        if turn.get("resultType") == "input_required":
            ctx.input_upstream = self.name
        return turn

    def _resume(self, what: str, ctx: CallContext, deadline: float, *, tool: bool) -> dict[str, Any]:
        """A modern caller's retry naming a held call (wherever it lives)."""
        try:
            turn: dict[str, Any] | McpError = held.resume(
                self.name, what, ctx.request_state or "", _principal(ctx), ctx.input_responses or {}, deadline)
        except InputRefused as exc:
            if tool:
                raise
            raise McpError(exc.code, exc.message, exc.data) from None
        except McpError as exc:
            turn = McpError(exc.code, f"upstream {self.name}: {what}: {exc.message}") if tool else exc
        return self._held_answer(turn, ctx, tool=tool)

    def _call_meta(self, client: McpClient, ctx: CallContext) -> dict[str, Any]:
        """The ``_meta`` of an upstream call: trace context and, for a legacy caller on a modern upstream, a log level.

        A legacy session gets an upstream's log messages unless it lowered them with
        ``logging/setLevel``; a modern request gets none without ``io.modelcontextprotocol/logLevel``,
        so the gateway asks for all of them on behalf of a legacy caller it can notify.
        """
        meta = _trace_meta(ctx)
        if client.modern and not _modern_caller(ctx) and ctx.notify is not None:
            meta[LOG_LEVEL] = "debug"
        return meta

    def _declared(self, ctx: CallContext | None) -> dict[str, Any]:
        """The client capabilities a modern upstream sees: a modern caller's own, none for a legacy caller here.

        (A legacy caller able to answer callbacks is served on a legacy session instead.)
        """
        if _modern_caller(ctx):
            caps = ctx.client_capabilities or {}
            return {k: v for k, v in caps.items() if isinstance(k, str)}
        if ctx is not None and ctx.request is not None:  # a legacy caller that can answer: bridged (_ask_legacy)
            caps = ctx.client_capabilities or {}
            return {k: caps[k] for k in CALLBACK_CAPABILITIES if k in caps}
        return {}

    def _ask_legacy(self, ctx: CallContext, what: str, result: dict[str, Any], deadline: float,
                    rounds: int) -> dict[str, Any]:
        """Answer a modern upstream's ``input_required`` for a legacy caller; the retry's extra params.

        Each ``inputRequests`` entry goes to the client as the server→client request it names
        (``elicitation/create``, ``sampling/createMessage``, ``roots/list``) over the caller's session;
        the answers become ``inputResponses`` under the upstream's keys, with the upstream's own
        ``requestState`` (kept here, for this call only). Raises :class:`_NeedsInput` when the caller
        did not declare a capability asked for, the client answers with an error, time runs out, or
        the upstream still asks after :data:`MAX_INPUT_ROUNDS` rounds.
        """
        where = f"upstream {self.name}: {what}"
        requests = result.get("inputRequests") or {}
        if not isinstance(requests, dict):
            raise _NeedsInput(f"{where} answered input_required with malformed inputRequests")
        if rounds >= MAX_INPUT_ROUNDS:
            raise _NeedsInput(f"{where} still asked for input after {MAX_INPUT_ROUNDS} rounds")
        kinds: dict[str, str] = {}
        for key, request in requests.items():
            kind = _INPUT_KINDS.get(request.get("method")) if isinstance(request, dict) else None
            if kind is None:
                raise _NeedsInput(f"{where} asked the client for input {key!r} of an unknown kind")
            kinds[key] = kind
        declared = (ctx.client_capabilities or {}) if ctx.request is not None else {}
        missing = sorted({kind for kind in kinds.values() if kind not in declared})
        if missing:
            needed = ", ".join(sorted({requests[k]["method"] for k in kinds}))
            raise _NeedsInput(f"{where} needs input from the client ({needed}), but this session did not declare "
                              f"the {' and '.join(missing)} capability in initialize")
        answers: dict[str, Any] = {}
        for key, request in requests.items():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _NeedsInput(f"{where}: no time left to ask the client for {key!r} (deadline passed)")
            params = dict(request.get("params") or {})
            if isinstance(params.get("_meta"), dict):  # reserved keys stay on the upstream's hop
                params = _hop_free(params)
            try:
                answers[key] = ctx.request(request["method"], params, timeout=remaining)
            except McpError as exc:
                raise _NeedsInput(f"{where}: the client answered {request['method']} with an error: "
                                  f"{exc.message} (code {exc.code})") from None
        extra: dict[str, Any] = {"inputResponses": answers}
        if isinstance(result.get("requestState"), str):
            extra["requestState"] = result["requestState"]
        return extra

    def _modern_error(self, link: _Link, ctx: CallContext | None, exc: McpError) -> None:
        """What a modern upstream's error means beyond its call: -32021 for the caller, -32022 a re-probe."""
        if not link.client.modern:
            return
        if exc.code == UNSUPPORTED_VERSION:
            self._reclassify(link, exc)
        elif exc.code == MISSING_CLIENT_CAPABILITY and _modern_caller(ctx) and ctx.request is not None:
            # The core turns a refused server→client request of a kind the caller did not declare into
            # 400/-32021 with data.requiredCapabilities: ask once per missing kind.
            required = (exc.data or {}).get("requiredCapabilities") if isinstance(exc.data, dict) else None
            for kind in (required or {}):
                method = _CAPABILITY_REQUESTS.get(kind)
                if method is None:
                    continue
                try:
                    ctx.request(method, {})
                except Exception:  # noqa: BLE001 - the refusal is the point: it records the missing capability
                    pass

    def _call_message(self, link: _Link, ctx: CallContext, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        if method == "notifications/progress" and ctx.notify is not None and ctx.progress_token is not None:
            params = dict(msg.get("params") or {})
            params["progressToken"] = ctx.progress_token
            ctx.notify({"jsonrpc": "2.0", "method": method, "params": params})
        elif method == "notifications/message" and ctx.notify is not None:
            ctx.notify(msg)
        else:
            self._on_notification(link, msg)

    def cancel(self, request_id: Any, *, session_id: str | None = None, reason: str | None = None) -> bool:
        """Cancel the upstream call serving downstream ``request_id``; ``True`` when one was running."""
        with self._lock:
            entry = self._inflight.pop((session_id, request_id), None)
        if entry is None:
            return False
        client, upstream_id = entry
        try:
            client.cancel(upstream_id, reason)
        except McpError:
            pass
        return True

    def _call(self, method: str, params: dict[str, Any], ctx: CallContext | None, *,
              stateful: bool = False) -> dict[str, Any]:
        ctx = ctx or CallContext()
        mrtr = method in ("prompts/get", "resources/read")
        if mrtr and ctx.state_upstream is not None and ctx.state_upstream != self.name:
            raise McpError(-32602, f"requestState refused: it names upstream {ctx.state_upstream}, not {self.name}")
        deadline = self._deadline(ctx)
        what = f"{method} {params.get('name') or params.get('uri')}"
        if mrtr and _modern_caller(ctx) and (ctx.request_state or "").startswith(held.HELD_PREFIX):
            return self._resume(what, ctx, deadline, tool=False)
        trace = _trace_meta(ctx)
        if trace:
            params = {**params, "_meta": {**(params.get("_meta") or {}), **trace}}
        for attempt in (1, 2):
            link = self._link_for(ctx, deadline, stateful=stateful)
            link.touch(ctx)
            if mrtr and _held_link(link) and _modern_caller(ctx):
                def send(upstream_id: Any, on_request: Callable[..., dict[str, Any]], timeout: float,
                         link: _Link = link) -> dict[str, Any]:
                    return link.client.request(method, params, timeout=timeout, request_id=upstream_id,
                                               on_request=on_request)

                return self._hold(link, ctx, deadline, what, send, tool=False)
            try:
                sent = {**params, **_retry_params(ctx)} if mrtr and link.client.modern else params
                for rounds in range(MAX_INPUT_ROUNDS + 1):
                    result = link.client.request(method, sent, timeout=max(0.001, deadline - time.monotonic()),
                                                 client_capabilities=self._declared(ctx))
                    if not link.client.modern:
                        return result
                    if result.get("resultType") != "input_required":
                        return _hop_free(result)
                    if not mrtr:
                        raise McpError(-32603, f"upstream {self.name}: {method} answered input_required, which "
                                               "only tools/call, prompts/get and resources/read may")
                    if _modern_caller(ctx):  # relayed, as for tools/call
                        ctx.input_upstream = self.name
                        return _input_required(result)
                    sent = {**params, **self._ask_legacy(ctx, what, result, deadline, rounds)}
                raise AssertionError("unreachable")  # _ask_legacy refuses the round after the last
            except _NeedsInput as exc:
                raise McpError(-32603, str(exc)) from None
            except McpSessionExpired:
                if attempt == 2:
                    raise
            except McpConnectionError as exc:
                if link.client.modern:
                    self._reclassify(link, exc)
                raise
            except McpError as exc:
                self._modern_error(link, ctx, exc)
                raise
            finally:
                link.last_used = time.monotonic()
        raise AssertionError("unreachable")

    def get_prompt(self, name: str, arguments: dict[str, Any] | None, ctx: CallContext | None = None,
                   ) -> dict[str, Any]:
        """``prompts/get`` upstream; raises :class:`McpError` with the upstream's code on failure."""
        params: dict[str, Any] = {"name": name}
        if arguments:
            params["arguments"] = arguments
        return self._call("prompts/get", params, ctx)

    def read_resource(self, uri: str, ctx: CallContext | None = None) -> dict[str, Any]:
        """``resources/read`` upstream; raises :class:`McpError` on failure."""
        return self._call("resources/read", {"uri": uri}, ctx)

    def subscribe(self, uri: str, ctx: CallContext) -> dict[str, Any]:
        """Subscribe on the downstream session's own upstream session; updates reach ``ctx.notify``."""
        return self._call("resources/subscribe", {"uri": uri}, ctx, stateful=True)

    def unsubscribe(self, uri: str, ctx: CallContext) -> dict[str, Any]:
        """Undo :meth:`subscribe`."""
        return self._call("resources/unsubscribe", {"uri": uri}, ctx, stateful=True)

    def complete(self, params: dict[str, Any], ctx: CallContext | None = None) -> dict[str, Any]:
        """``completion/complete`` upstream (``params`` as the client sent them)."""
        return self._call("completion/complete", params, ctx)

    def set_logging_level(self, level: str, ctx: CallContext) -> dict[str, Any]:
        """Set the log level on the downstream session's own upstream session; logs reach ``ctx.notify``."""
        return self._call("logging/setLevel", {"level": level}, ctx, stateful=True)
