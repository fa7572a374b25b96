"""The gateway's WSGI application: a thin MCP dispatcher in front of a small Flask app.

``POST P/mcp`` and ``POST P/message`` are the hot path, so :class:`GatewayApp`
answers ``P/mcp``, ``P/sse`` and ``P/message`` itself from the current snapshot
and hands everything else (``/healthz``, ``/readyz``, ``/metrics``, CORS
preflight, 404s) to Flask.

>>> app = create_app(store_url="sqlite:///mcpgw.db")  # doctest: +SKIP
>>> app.start()  # first load, then the reloader polls  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

from flask import Flask, Response, jsonify, request

from mcpgw_sdk.config_model import DEFAULT_TENANT
from mcpgw_sdk.records import AuditRecord
from mcpgw_sdk.redact import redact_json
from mcpgw_sdk.settings import Settings, resolve
from mcpgw_sdk.store import AccountStore, ActivityStore

from .audit import AuditWriter
from .backends import credentials, held
from .mcp import jsonrpc, sealing
from .metrics import CONTENT_TYPE, Metrics
from .origin import cors_headers, host_allowed, is_local_bind, origin_allowed, own_origins
from .reloader import Reloader, hub_safe
from .sessions import CLOSED as SESSION_CLOSED
from .sessions import MemorySessionStore, Session, SessionLimits, SessionsFull, SessionStore
from .snapshot import EMPTY, Snapshot
from .statuses import standard_reasons
from .transports import detached, sse, streamable
from .transports.base import request_headers, respond_error

log = logging.getLogger("mcpgw.gateway")
# A patched Thread costs ~90 µs to start, a bare greenlet ~7 µs; HTTP+SSE starts one per request.
_gevent_spawn = None
_native_lock = None
if "gevent.monkey" in sys.modules and sys.modules["gevent.monkey"].is_module_patched("threading"):
    from gevent import spawn as _gevent_spawn
    from gevent.monkey import get_original

    _native_lock = get_original("_thread", "allocate_lock")


def _native_locks(metric: Any) -> Any:
    """``metric`` (a prometheus child the request path updates) with the interpreter's own locks, not gevent's.

    prometheus_client guards each value with a ``threading.Lock``, which gevent's patch makes a Python-level
    lock (~1 µs per ``inc``, a histogram takes two). An increment never yields while it holds the lock, so
    the native lock (~0.1 µs) excludes greenlets and threads alike. Values of another kind (multiprocess
    mode) are left as they are.
    """
    if _native_lock is not None:
        values = [getattr(metric, "_value", None), getattr(metric, "_sum", None), *getattr(metric, "_buckets", ())]
        for value in values:
            if type(value).__name__ == "MutexValue" and hasattr(value, "_lock"):
                value._lock = _native_lock()
    return metric


#: How an outcome is recorded in the audit trail.
_AUDIT_OUTCOME = {"invalid": "error", "unknown": "error"}
_AUDIT_FIELDS = dataclasses.fields(AuditRecord)
_AUDIT_DEFAULTS = {f.name: f.default for f in _AUDIT_FIELDS if f.default is not dataclasses.MISSING}
# Filled in one step when it is a plain frozen dataclass (no slots, factories or checks after __init__): its
# __init__ sets each of the twelve fields with object.__setattr__ (~2 µs more per tool call).
_AUDIT_PLAIN = not hasattr(AuditRecord, "__slots__") and not hasattr(AuditRecord, "__post_init__") \
    and all(f.default_factory is dataclasses.MISSING and f.init for f in _AUDIT_FIELDS)


def audit_record(**fields: Any) -> AuditRecord:
    """``AuditRecord(**fields)``: the same record, built without the frozen dataclass's per-field setattr.

    The caller names every field without a default (the tests compare what :meth:`Gateway.observe` builds).
    """
    if not _AUDIT_PLAIN:
        return AuditRecord(**fields)
    record = object.__new__(AuditRecord)
    record.__dict__.update(_AUDIT_DEFAULTS, **fields)
    return record


_KNOWN_METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
    "resources/read", "resources/templates/list", "resources/subscribe", "resources/unsubscribe",
    "completion/complete", "logging/setLevel", "notifications/initialized", "notifications/cancelled",
    "notifications/progress", "notifications/roots/list_changed", "server/discover", "subscriptions/listen",
    "response"})


_LISTEN_FLAGS = {"tools": "toolsListChanged", "prompts": "promptsListChanged", "resources": "resourcesListChanged"}
CLOSED = object()


class Listener:
    """One ``subscriptions/listen`` stream: its id, the honoured filter, and the queue its body reads."""

    def __init__(self, prefix: str, subscription_id: Any, accepted: dict[str, Any]):
        self.prefix = prefix
        self.subscription_id = subscription_id
        self.accepted = accepted
        self.queue: queue.Queue = queue.Queue()
        #: what stops this stream's resource watches (one per upstream backend of its prefix), and those backends
        self.unwatch: list[Callable[[], None]] = []
        self.watching: list[Any] = []
        self.owner = ""  # who opened it (transports.base.owner_of); counted until unlisten
        self.counted = True

    def resource_updated(self, params: dict[str, Any]) -> None:
        """Queue ``notifications/resources/updated`` (a watched upstream called this for a URI of the filter)."""
        self.queue.put({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                        "params": {**params, "_meta": {"io.modelcontextprotocol/subscriptionId": self.subscription_id}}})

    def changed(self, kind: str) -> bool:
        """Queue ``notifications/<kind>/list_changed`` when the client asked for it."""
        if not self.accepted.get(_LISTEN_FLAGS.get(kind, "")):
            return False
        self.queue.put({"jsonrpc": "2.0", "method": f"notifications/{kind}/list_changed",
                        "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": self.subscription_id}}})
        return True

    def close(self) -> None:
        """End the stream gracefully: the body sends the listen request's result, then ends."""
        self.queue.put(CLOSED)


class Gateway:
    """The state one gateway process serves from: snapshot, sessions, metrics, audit, reloader.

    ``settings`` (:func:`~mcpgw_sdk.settings.resolve`'s when ``None``) is handed to what the gateway
    builds (backends, the sealer, held calls, the secrets cache); the keyword arguments are the
    settings it uses itself, already resolved by :func:`create_app`.
    """

    def __init__(self, *, store: Any = None, host: str, port: int, public_url: str, reload_interval: float,
                 max_body_bytes: int, sse_heartbeat: float, sessions: SessionStore, audit: bool,
                 allow_anonymous: bool = False, session_limits: SessionLimits | None = None,
                 max_batch: int = 100, max_initialize_bytes: int = 64 * 1024, body_timeout: float = 30.0,
                 settings: Settings | None = None):
        self.settings = settings = settings if settings is not None else resolve()
        self.store = store
        self.snapshot: Snapshot = EMPTY
        self.sessions = sessions
        # a retry of a held MRTR call may reach another worker: routed via Redis
        held.configure(sessions, held_call_timeout=settings.held_call_timeout)
        self.metrics = Metrics()
        _native_locks(self.metrics.request_latency)  # observed by every POST
        self.host = host
        self.port = port
        self.public_url = public_url
        self.local_bind = is_local_bind(host)
        self.allow_anonymous = allow_anonymous
        self.max_body_bytes = max_body_bytes
        self.session_limits = session_limits or SessionLimits()
        self.max_batch = max_batch
        self.max_initialize_bytes = max_initialize_bytes
        self.body_timeout = body_timeout
        self.sse_heartbeat = sse_heartbeat
        self.max_listen_per_principal = int(settings.max_listen_per_principal)
        self.readyz_token: str = settings.readyz_token
        self.reloader = Reloader(self, store, interval=reload_interval, settings=settings) \
            if store is not None else None
        self.audit = None
        if audit and isinstance(store, ActivityStore):  # a yaml:// directory keeps no audit trail
            self.audit = AuditWriter(hub_safe(store, store.write_audit),
                                     on_drop=lambda n: self.metrics.audit_dropped.inc(n))
        self._origins: dict[str, frozenset[str]] = {}
        self._method_counters: dict[str, Any] = {}
        self._tool_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._auth_cache: dict[Any, tuple[Any, Any]] = {}
        self._pending: dict[tuple[str, str], queue.Queue] = {}
        self._listeners: dict[str, set[Listener]] = {}
        self._listeners_lock = threading.Lock()
        self._listen_owners: dict[str, int] = {}  # open listen streams per caller (max_listen_per_principal)
        self._client_ids = itertools.count(1)

    # -- request helpers ----------------------------------------------------
    def own_origins(self, environ: dict[str, Any]) -> frozenset[str]:
        """Origins that are this gateway (by the port the request arrived on)."""
        port = environ.get("SERVER_PORT") or str(self.port)
        found = self._origins.get(port)
        if found is None:
            found = own_origins(local_bind=self.local_bind, port=port, public_url=self.public_url)
            self._origins[port] = found
        return found

    def count_method(self, method: str) -> None:
        """Count one MCP message by method (unknown methods share one label)."""
        if not isinstance(method, str) or method not in _KNOWN_METHODS:  # a client may send any JSON here
            method = "other"
        counter = self._method_counters.get(method)
        if counter is None:
            counter = self._method_counters[method] = _native_locks(self.metrics.mcp_requests.labels(method))
        counter.inc()

    def observe(self, route: Any, entry: Any, tool: str, outcome: str, seconds: float, ctx: Any,
                error: str | None) -> None:
        """Metrics and an audit record for one tool call."""
        key = (route.prefix, tool if entry is not None else "(unknown)", outcome)
        children = self._tool_children.get(key)
        if children is None:
            children = self._tool_children[key] = (_native_locks(self.metrics.tool_calls.labels(*key)),
                                                   _native_locks(self.metrics.tool_latency.labels(route.prefix)))
        children[0].inc()
        if seconds:
            children[1].observe(seconds)
        if self.audit is not None:
            self.audit.add(audit_record(
                ts=datetime.now(timezone.utc), tenant=route.tenant, prefix=route.prefix,
                server=entry.server if entry is not None else "", tool=tool,
                outcome=_AUDIT_OUTCOME.get(outcome, outcome),
                latency_ms=round(seconds * 1000, 3), user=ctx.user, key_id=ctx.key_id, session_id=ctx.session_id,
                error=error))

    def authenticate(self, route: Any, environ: dict[str, Any]) -> Any:
        """The caller's :class:`~gateway_server.mcp_auth.Principal`; raises AuthFailure."""
        from . import mcp_auth

        snap = self.snapshot
        # Cached with the object they were built from: an id() alone can be reused by a later snapshot.
        cached = self._auth_cache.get("keys")
        if cached is None or cached[0] is not snap:
            self._auth_cache.clear()
            cached = self._auth_cache["keys"] = (snap, mcp_auth.KeyIndex(snap.keys))
        keys = cached[1]
        if route.auth_mode != "oauth2":  # API keys: no URLs or verifier needed
            return mcp_auth.authenticate(route.auth, request_headers(environ), keys=keys, tenant=route.tenant,
                                         resource_url="", metadata_url="")
        cached = self._auth_cache.get(("oauth", route.prefix))
        if cached is None or cached[0] is not route:
            cached = self._auth_cache[("oauth", route.prefix)] = (route, mcp_auth.OAuthVerifier.from_config(route.auth))
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST') or f'{self.host}:{self.port}'}"
        if self.public_url:
            base = self.public_url.rstrip("/")
        return mcp_auth.authenticate(route.auth, request_headers(environ), keys=keys, tenant=route.tenant,
                                     resource_url=f"{base}{route.prefix}/mcp",
                                     metadata_url=base + mcp_auth.metadata_path(route.prefix), oauth=cached[1])

    def client_request(self, session_id: str, send: Callable[[dict[str, Any]], Any], method: str,
                       params: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send a server-to-client request (sampling, elicitation, roots) and wait for its result.

        Raises :class:`~mcpgw_sdk.client.McpError` with the client's error, or -32001 on timeout.
        """
        from mcpgw_sdk.client import McpError

        request_id = f"gw-{next(self._client_ids)}"
        waiter: queue.Queue = queue.Queue(maxsize=1)
        self._pending[(session_id, request_id)] = waiter
        try:
            send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            try:
                reply = waiter.get(timeout=timeout or 300.0)
            except queue.Empty:
                raise McpError(-32001, f"the client did not answer {method} in time") from None
        finally:
            self._pending.pop((session_id, request_id), None)
        if "error" in reply:
            err = reply["error"] or {}
            raise McpError(int(err.get("code", -32603)), str(err.get("message", "")), err.get("data"))
        return reply.get("result") or {}

    def resolve(self, session_id: str, message: dict[str, Any]) -> bool:
        """Hand a client's response to the server-to-client request waiting for it."""
        waiter = self._pending.get((session_id, str(message.get("id"))))
        if waiter is None:
            return False
        waiter.put(message)
        return True

    def spawn(self, func: Callable[..., Any], *args: Any) -> Any:
        """Run ``func`` concurrently: a greenlet when gevent patched threading, else a daemon thread; return it."""
        if _gevent_spawn is not None:
            return _gevent_spawn(func, *args)
        thread = threading.Thread(target=func, args=args, daemon=True)
        thread.start()
        return thread

    def abandon(self, route: Any, ctx: Any, worker: Any, *, tool: str | None = None,
                reason: str = "the client closed the response stream") -> None:
        """Cancel a modern request whose client closed its stream.

        Upstreams that know the call (by ``ctx.request_id``) send ``notifications/cancelled`` and
        stop waiting for it. Otherwise the call's greenlet is killed, which abandons a REST call
        mid-flight; a request that may involve an upstream the gateway could not cancel is left to
        end on its own (killing it could cut an upstream message in half).
        """
        self.metrics.cancelled.inc()
        told = False
        for backend in route.backends:
            if hasattr(backend, "cancel"):
                try:
                    told = bool(backend.cancel(ctx.request_id, session_id=ctx.session_id, reason=reason)) or told
                except Exception:  # noqa: BLE001
                    log.exception("cancelling an upstream call failed")
        if told or not hasattr(worker, "kill"):
            return
        entry = route.tools.get(tool) if tool is not None else None
        backends = [entry.backend] if entry is not None else list(route.backends)
        if not any(hasattr(b, "cancel") for b in backends):
            worker.kill(block=False)

    # -- subscriptions/listen streams of this process ----------------------
    def listen(self, prefix: str, subscription_id: Any, accepted: dict[str, Any],
               watchers: Iterable[Any] = (), owner: str = "") -> Listener:
        """Register a ``subscriptions/listen`` stream of ``prefix`` (this worker's own, no Redis).

        Raises :class:`~gateway_server.sessions.SessionsFull` (429) when ``owner`` (the caller, as
        :func:`~gateway_server.transports.base.owner_of` names it) already holds ``max_listen_per_principal``.

        ``accepted["resourceSubscriptions"]`` are watched on each of ``watchers`` (the prefix's
        upstreams that serve them, :func:`~gateway_server.mcp.core.subscribable`) before this returns,
        so an update after the acknowledgement reaches the stream.
        """
        limit = self.max_listen_per_principal
        with self._listeners_lock:
            if limit > 0 and self._listen_owners.get(owner, 0) >= limit:
                raise SessionsFull(f"too many listen streams of this caller (max_listen_per_principal={limit}); "
                                   "close one first", status=429, setting="max_listen_per_principal")
            self._listen_owners[owner] = self._listen_owners.get(owner, 0) + 1
        listener = Listener(prefix, subscription_id, accepted)
        listener.owner = owner
        uris = accepted.get("resourceSubscriptions") or []
        for backend in watchers if uris else ():
            try:
                listener.unwatch.append(backend.watch_resources(uris, listener.resource_updated))
                listener.watching.append(backend)
            except Exception:  # noqa: BLE001 - the stream still serves its other notifications
                log.exception("watching resources failed")
        with self._listeners_lock:
            self._listeners.setdefault(prefix, set()).add(listener)
        self.metrics.streams.inc()
        return listener

    def unlisten(self, listener: Listener) -> None:
        """Forget a listen stream (its client closed it, or it was closed) and stop its resource watches."""
        for unwatch in listener.unwatch:
            try:
                unwatch()
            except Exception:  # noqa: BLE001
                log.exception("unwatching resources failed")
        listener.unwatch = []
        with self._listeners_lock:
            held = self._listeners.get(listener.prefix)
            if held is not None and listener in held:
                held.discard(listener)
                if not held:
                    del self._listeners[listener.prefix]
                self.metrics.streams.dec()
            if not listener.counted:
                return
            listener.counted = False
            left = self._listen_owners.get(listener.owner, 0) - 1
            if left > 0:
                self._listen_owners[listener.owner] = left
            else:
                self._listen_owners.pop(listener.owner, None)

    def listened_prefixes(self) -> list[str]:
        """Prefixes with at least one listen stream here."""
        with self._listeners_lock:
            return list(self._listeners)

    def announce(self, prefix: str, kind: str) -> int:
        """Send ``notifications/<kind>/list_changed`` to the listen streams of ``prefix`` that asked; return how many."""
        with self._listeners_lock:
            held = list(self._listeners.get(prefix, ()))
        return sum(1 for listener in held if listener.changed(kind))

    def close_stale_watchers(self, prefix: str, backends: Iterable[Any]) -> int:
        """End gracefully the streams of ``prefix`` that watch resources on a backend not in ``backends``
        (a reload replaced or removed it): their clients listen again and watch the new ones."""
        kept = {id(b) for b in backends}
        with self._listeners_lock:
            stale = [lst for lst in self._listeners.get(prefix, ()) if any(id(b) not in kept for b in lst.watching)]
        for listener in stale:
            listener.close()
        return len(stale)

    def close_listeners(self, prefix: str | None = None) -> int:
        """End listen streams gracefully (all, or those of ``prefix``): each gets its final result."""
        with self._listeners_lock:
            held = [lst for p, group in self._listeners.items() if prefix is None or p == prefix for lst in group]
        for listener in held:
            listener.close()
        return len(held)

    def stream(self, session_id: str, *, first: bytes, end_session: Any = None,
               environ: dict[str, Any] | None = None) -> Iterator[bytes]:
        """The SSE body of a session's stream: ``first``, then messages and heartbeat comments.

        Under ``mcpgw serve`` with sessions in memory the stream continues detached after ``first``
        (:mod:`.transports.detached`): the request's greenlet ends and the connection stays open.
        """
        self.metrics.streams.inc()
        listener = None
        handed_off = False
        try:
            if environ is not None and self.sessions.attaches and "mcpgw.detach" in environ:
                yield first
                sock = detached.detach(environ)
                if sock is not None:  # from here the detached stream counts itself and ends the session
                    handed_off = True
                    self._detach_stream(session_id, sock, end_session)
                    return
                listener = self.sessions.listen(session_id, timeout=self.sse_heartbeat)
            else:
                listener = self.sessions.listen(session_id, timeout=self.sse_heartbeat)
                yield first
            for message in listener:
                yield b": ping\n\n" if message is None else (b"event: message\ndata: " + jsonrpc.dumps(message)
                                                            + b"\n\n")
        finally:
            if listener is not None:
                listener.close()
            if not handed_off:
                self.metrics.streams.dec()
            if end_session is not None and not handed_off:
                session = self.sessions.get(session_id)
                if session is not None:
                    self.end_session(session, end_session)

    def _detach_stream(self, session_id: str, sock: Any, end_session: Any) -> None:
        def encode(item: Any) -> tuple[bytes, bool]:
            if item is SESSION_CLOSED:
                return b"", True
            if item is None:
                return b": ping\n\n", False
            return b"event: message\ndata: " + jsonrpc.dumps(item) + b"\n\n", False

        def on_end() -> None:
            self.sessions.unattach(session_id, sink)
            self.metrics.streams.dec()
            if end_session is not None:
                session = self.sessions.get(session_id)
                if session is not None:
                    self.end_session(session, end_session)

        detached.interval = self.sse_heartbeat
        sink = detached.DetachedStream(sock, encode, on_end)
        if not self.sessions.attach(session_id, sink):
            sink.put(SESSION_CLOSED)  # ended meanwhile: close the stream as the generator would
            return
        sink.start()

    def end_session(self, session: Session, route: Any) -> None:
        """Delete a session and tell its backends."""
        if self.sessions.delete(session.id):
            self.metrics.sessions.dec()
        for backend in getattr(route, "backends", ()):
            if hasattr(backend, "session_closed"):
                try:
                    backend.session_closed(session.id)
                except Exception:  # noqa: BLE001
                    log.exception("session_closed failed")

    def end_orphaned_sessions(self, old: Snapshot, new: Snapshot) -> int:
        """End the sessions of prefixes ``old`` served and ``new`` does not (removed or disabled routers).

        Their streams close and later requests get 404, as for any unknown prefix; returns how many ended.
        """
        gone = {p: r for p, r in old.routes.items() if p not in new.routes}
        if not gone:
            return 0  # the common reload lists no sessions
        ended = 0
        for session in self.sessions.list():
            route = gone.get(session.prefix)
            if route is not None:
                self.end_session(session, route)
                ended += 1
        if ended:
            log.info("ended %d session(s) of %d prefix(es) no longer served", ended, len(gone))
        return ended

    # -- lifecycle ----------------------------------------------------------
    def start(self) -> None:
        """Load the config once (synchronously), then poll in the background."""
        from mcpgw_sdk.templates import configure as configure_templates

        # the MRTR requestState key, shared by every worker and replica
        sealing.install_from(self.store, secret=self.settings.state_secret or None, ttl=self.settings.state_ttl)
        configure_templates(timeout=self.settings.render_timeout, max_bytes=self.settings.render_max_bytes)
        if isinstance(self.store, AccountStore):  # a yaml:// directory keeps no secrets: every lookup finds none
            # templates' {{ secrets.NAME }}: read at call time (cached briefly), never from the snapshot
            credentials.configure(hub_safe(self.store, self.store.sealed_secrets),
                                  cache_ttl=self.settings.secrets_cache_ttl)
        if self.reloader is not None:
            self.reloader.poll()
            self.reloader.start()
        if self.audit is not None:
            self.audit.start()

    def stop(self) -> None:
        """Stop polling, flush audit records, close backends and the store."""
        if self.reloader is not None:
            self.reloader.stop()
        self.close_listeners()
        if self.audit is not None:
            self.audit.stop()
        for backend in self.snapshot.backends.values():
            try:
                backend.close()
            except Exception:  # noqa: BLE001
                log.exception("closing backend")
        held.shutdown()
        self.sessions.close()

    def readiness(self) -> tuple[dict[str, Any], bool]:
        """The ``/readyz`` document and whether the gateway is ready."""
        snap = self.snapshot
        ready = snap.revision >= 0
        rel = self.reloader
        doc = {
            "ready": ready,
            "revision": snap.revision if ready else None,
            "loaded_at": datetime.fromtimestamp(snap.loaded_at, timezone.utc).isoformat() if ready else None,
            "snapshot_age_seconds": round(time.time() - snap.loaded_at, 3) if ready else None,
            "routes": sorted(snap.routes),
            "disabled_routes": sorted(snap.disabled),
            "documents_with_errors": snap.errors,
            "last_poll_error": rel.last_error if rel else None,
            "last_poll": datetime.fromtimestamp(rel.last_poll, timezone.utc).isoformat() if rel and rel.last_poll
            else None,
            "sessions": len(self.sessions.list()),
            "upstreams": self.upstreams(),
            "hidden_tools": {p: list(r.hidden) for p, r in sorted(snap.routes.items()) if getattr(r, "hidden", ())},
        }
        return doc, ready

    def upstreams(self) -> list[dict[str, Any]]:
        """``status()`` of every upstream MCP server of the snapshot, with its document (for /readyz, metrics)."""
        out = []
        for backend in self.snapshot.backends.values():
            if hasattr(backend, "status"):
                doc = getattr(backend, "document", None) or {}
                out.append({"document": f"{doc.get('tenant') or DEFAULT_TENANT}/{doc.get('name')}", **backend.status()})
        return sorted(out, key=lambda st: (st["document"], st["server"]))

    def close_expired_sessions(self) -> int:
        """Tell backends about sessions that ended without DELETE (expired); return how many were closed.

        Backends hold per-session upstream sessions keyed by downstream id; any id the session store no
        longer knows has expired (or was deleted by another replica).
        """
        held = [(b, b.session_ids()) for b in self.snapshot.backends.values() if hasattr(b, "session_ids")]
        held = [(b, ids) for b, ids in held if ids]
        if not held:
            return 0  # the common case costs no session listing
        live = {s.id for s in self.sessions.list()}
        closed = 0
        for backend, ids in held:
            for sid in ids:
                if sid not in live:
                    try:
                        backend.session_closed(sid)
                        closed += 1
                    except Exception:  # noqa: BLE001
                        log.exception("session_closed failed")
        return closed


def _flask_app(gateway: Gateway) -> Flask:
    app = Flask("gateway_server")
    app.wsgi_app = standard_reasons(app.wsgi_app)  # "404 Not Found", not werkzeug's "404 NOT FOUND"

    @app.get("/healthz")
    def healthz():
        """Liveness: always 200."""
        return jsonify(status="ok")

    @app.get("/readyz")
    def readyz():
        """Readiness: 200 once a snapshot is loaded, 503 before; the details only for :func:`_readyz_details`."""
        if not host_allowed(request.headers.get("Host"), local_bind=gateway.local_bind):
            return jsonify(error=f"Host {request.headers.get('Host')!r} is not served by this gateway"), 421
        doc, ready = gateway.readiness()
        if not _readyz_details(request.environ, public_url=gateway.public_url, token=gateway.readyz_token):
            doc = {"ready": ready}
        return jsonify(redact_json(doc)), 200 if ready else 503

    @app.get("/metrics")
    def metrics():
        """Prometheus text exposition."""
        gateway.metrics.sessions.set(len(gateway.sessions.list()))
        gateway.metrics.set_upstreams(gateway.upstreams())
        return Response(gateway.metrics.render(), content_type=CONTENT_TYPE)

    @app.get("/.well-known/oauth-protected-resource/<path:prefix>")
    def resource_metadata(prefix):
        """RFC 9728 metadata of an OAuth-protected router."""
        from . import mcp_auth

        route = gateway.snapshot.routes.get("/" + prefix.strip("/"))
        if route is None or route.auth_mode != "oauth2":
            return jsonify(error="not_found", error_description=f"no OAuth-protected router at /{prefix}"), 404
        base = gateway.public_url.rstrip("/") or request.host_url.rstrip("/")
        return jsonify(mcp_auth.protected_resource_metadata(route.auth, f"{base}{route.prefix}/mcp"))

    @app.route("/", defaults={"path": ""}, methods=["OPTIONS"])
    @app.route("/<path:path>", methods=["OPTIONS"])
    def preflight(path):
        """CORS preflight from the router's ``cors`` block."""
        route = _route_of(gateway.snapshot, "/" + path)[0]
        origin = request.headers.get("Origin")
        if route is None:
            return _not_found("/" + path, gateway.snapshot)
        if origin and not origin_allowed(origin, gateway.own_origins(request.environ), route.cors):
            return jsonify(jsonrpc.error(None, jsonrpc.INVALID_REQUEST, f"Origin {origin!r} is not allowed")), 403
        resp = Response(status=204)
        for name, value in cors_headers(origin, route.cors, preflight=True):
            resp.headers[name] = value
        resp.headers["Allow"] = "GET, POST, DELETE, OPTIONS"
        return resp

    @app.errorhandler(404)
    def not_found(_exc):
        """404 with a JSON-RPC error body (saying so when the prefix belongs to a disabled router)."""
        return _not_found(request.path, gateway.snapshot)

    @app.errorhandler(405)
    def not_allowed(_exc):
        """405 on operational endpoints; 404 anywhere else."""
        if request.path not in ("/healthz", "/readyz", "/metrics"):
            return _not_found(request.path, gateway.snapshot)  # the catch-all OPTIONS rule is not a resource
        return jsonify(error="method not allowed", path=request.path), 405

    return app


_FORWARDED = ("HTTP_FORWARDED", "HTTP_X_FORWARDED_FOR", "HTTP_X_REAL_IP")


def _readyz_details(environ: dict[str, Any], *, public_url: str = "", token: str = "") -> bool:
    """Whether a ``/readyz`` caller may see the details (documents, errors, upstreams): a caller presenting
    ``Authorization: Bearer <token>`` (the ``readyz_token`` setting), or a loopback peer that did not come through a proxy and named
    a loopback host or the host of ``public_url`` in ``Host`` (a DNS-rebinding page also arrives from loopback,
    but under its own name, whatever address the gateway is bound to)."""
    import hmac
    import ipaddress
    from urllib.parse import urlsplit

    from .origin import is_loopback_name, split_host

    if token:
        given = environ.get("HTTP_AUTHORIZATION") or ""
        if hmac.compare_digest(given.encode("utf-8", "replace"), f"Bearer {token}".encode()):
            return True
    if any(environ.get(name) for name in _FORWARDED):
        return False  # a proxy on this host makes every caller look local
    try:
        peer = ipaddress.ip_address((environ.get("REMOTE_ADDR") or "").split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(peer, ipaddress.IPv6Address) and peer.ipv4_mapped is not None:
        peer = peer.ipv4_mapped
    if not peer.is_loopback:
        return False
    host_header = environ.get("HTTP_HOST")
    if not host_header:
        return True  # no browser sends a request without Host
    parts = split_host(host_header)
    if parts is None:
        return False
    if is_loopback_name(parts[0]):
        return True
    try:
        public_host = (urlsplit(public_url).hostname or "") if public_url else ""
    except ValueError:
        public_host = ""
    return bool(public_host) and parts[0].strip("[]") == public_host.lower()


def _not_found(path: str, snapshot: Snapshot | None = None):
    message = f"not found: nothing is served at {path}"
    for suffix, size in _SUFFIXES:
        document = (snapshot.disabled.get(path[:-size]) if snapshot is not None and path.endswith(suffix)
                    else None)
        if document is not None:
            message = (f"endpoint disabled: {path[:-size]} is disabled in {document} (routers[].disabled);"
                       " enable it to serve it again")
            break
    return jsonify(jsonrpc.error(None, jsonrpc.METHOD_NOT_FOUND, message)), 404


_SUFFIXES = (("/mcp", 4), ("/sse", 4), ("/message", 8))


def _route_of(snapshot: Snapshot, path: str) -> tuple[Any, str]:
    for suffix, size in _SUFFIXES:
        if path.endswith(suffix):
            route = snapshot.routes.get(path[:-size] or "/")
            if route is not None:
                return route, suffix
    return None, ""


class GatewayApp:
    """The WSGI callable: MCP endpoints handled directly, the rest by Flask.

    ``gateway`` holds the state, ``flask`` the fallback app. With ``lazy=True``
    the first request calls :meth:`start` (for ``gunicorn`` workers).
    """

    def __init__(self, gateway: Gateway, *, lazy: bool = False):
        self.gateway = gateway
        self.flask = _flask_app(gateway)
        self._flask_wsgi = self.flask.wsgi_app
        self._lazy = lazy
        self._started = False
        self._ready = False  # the first load has finished: requests that came during it waited for it
        self._start_lock = threading.Lock()
        self._http_counters: dict[tuple[str, str], Any] = {}

    def start(self) -> GatewayApp:
        """Load the config and start the reloader and the audit writer (once)."""
        with self._start_lock:  # a request arriving while another one loads waits here, not on an empty snapshot
            if not self._started:
                self._started = True
                try:
                    self.gateway.start()
                finally:
                    self._ready = True
        return self

    def stop(self) -> None:
        """Stop background work and close backends."""
        self.gateway.stop()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if self._lazy and not self._ready:
            self.start()
        if environ["REQUEST_METHOD"] != "OPTIONS":
            route, suffix = _route_of(self.gateway.snapshot, environ.get("PATH_INFO") or "/")
            if route is not None:
                counters = self._http_counters
                http_requests = self.gateway.metrics.http_requests
                send = start_response

                def counted(status, headers, exc_info=None):
                    key = (suffix, status[:3])
                    child = counters.get(key)
                    if child is None:
                        child = counters[key] = _native_locks(http_requests.labels(suffix[1:], status[:3]))
                    child.inc()
                    return send(status, headers) if exc_info is None else send(status, headers, exc_info)

                start_response = counted
                try:
                    if suffix == "/mcp":
                        return streamable.handle(self.gateway, route, environ, start_response)
                    if suffix == "/message":
                        return sse.handle_message(self.gateway, route, environ, start_response)
                    return sse.handle_stream(self.gateway, route, environ, start_response)
                except Exception:  # noqa: BLE001 - never leak a traceback to the client
                    log.exception("internal error on %s", environ.get("PATH_INFO"),
                                  extra={"request_id": environ.get("HTTP_X_REQUEST_ID"),
                                         "session_id": environ.get("HTTP_MCP_SESSION_ID"), "prefix": route.prefix})
                    return respond_error(start_response, 500, jsonrpc.INTERNAL_ERROR, "internal error")
        return self._flask_wsgi(environ, start_response)


def open_sessions(*, redis_url: str = "", ttl: float = 3600.0) -> SessionStore:
    """The session store the settings ask for (in memory unless ``redis_url`` is set)."""
    if redis_url:
        from .sessions_redis import RedisSessionStore  # loads the redis client only when it is used

        return RedisSessionStore(redis_url, ttl=ttl)
    return MemorySessionStore(ttl=ttl)


def create_app(*, store_url: str | None = None, store: Any = None, host: str | None = None, port: int | None = None,
               public_url: str | None = None, reload_interval: float | None = None,
               max_body_bytes: int | None = None, sse_heartbeat: float | None = None,
               session_ttl: float | None = None, redis_url: str | None = None, audit: bool | None = None,
               allow_anonymous: bool | None = None, sessions: SessionStore | None = None, check: bool = True,
               lazy: bool = False, settings: Settings | None = None) -> GatewayApp:
    """Build the gateway's WSGI app (nothing starts until :meth:`GatewayApp.start`).

    ``settings`` is what the entry point resolved (:func:`~mcpgw_sdk.settings.resolve`; ``None``:
    resolved here, from ``MCPGW_*`` variables, then defaults); the other keyword arguments, when not
    ``None``, override it. ``store`` (an open :class:`~mcpgw_sdk.store.ConfigStore`) takes precedence over
    ``store_url``; with ``check`` a store whose schema is behind raises MigrationRequired.
    """
    settings = (settings if settings is not None else resolve()).replace(
        database_url=store_url, host=host, port=port, public_url=public_url, reload_interval=reload_interval,
        max_body_bytes=max_body_bytes, sse_heartbeat=sse_heartbeat, session_ttl=session_ttl, redis_url=redis_url,
        audit=audit, allow_anonymous=allow_anonymous)
    if store is None:
        from mcpgw_sdk.opening import open_store

        store = open_store(settings.database_url, check=check)
    if sessions is None:
        sessions = open_sessions(redis_url=settings.redis_url, ttl=settings.session_ttl)
    gateway = Gateway(
        store=store, host=settings.host, port=settings.port, public_url=settings.public_url,
        reload_interval=settings.reload_interval, max_body_bytes=settings.max_body_bytes,
        sse_heartbeat=settings.sse_heartbeat, sessions=sessions, audit=settings.audit,
        allow_anonymous=settings.allow_anonymous,
        session_limits=SessionLimits(total=settings.max_sessions, per_prefix=settings.max_sessions_per_router,
                                     per_owner=settings.max_sessions_per_principal),
        max_batch=settings.max_batch, max_initialize_bytes=settings.max_initialize_bytes,
        body_timeout=settings.body_timeout, settings=settings)
    return GatewayApp(gateway, lazy=lazy)
