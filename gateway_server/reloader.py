"""Poll the config revision; on change load, build and swap the snapshot.

Runs as a thread, which is a greenlet in the gevent-patched server. The
database is never on the request path: when it is down the gateway keeps
serving the last good snapshot and ``/readyz`` reports the poll error and the
snapshot's age; the log says so once per outage, not on every poll. Reads of a
store whose driver blocks in C (SQLite) run in a native thread, so a locked
database file stalls only the poll, never the requests.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .backends import make_backend
from .snapshot import build_snapshot, retired_backends

log = logging.getLogger("mcpgw.reloader")
T = TypeVar("T")

LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def blocks_hub(store: Any) -> bool:
    """Whether ``store``'s driver blocks in C, unseen by gevent (SQLite: a locked file stalls a read ~10 s).

    PostgreSQL (psycogreen) and MySQL (PyMySQL on patched sockets) already yield to other greenlets.
    """
    return getattr(getattr(store, "info", None), "kind", None) == "sqlite"


_worker_lock = threading.Lock()
_worker: tuple[int, Any] | None = None  # (pid, gevent ThreadPool of one thread) of this process


def _store_thread() -> Any:
    """This process's one native thread for blocking store calls (a private gevent ThreadPool of size 1).

    One long-lived thread, not gevent's shared hub pool: its threads come and go with other users' work,
    and each would take a pooled SQLite connection of its own. Created lazily, again after a fork.
    """
    global _worker
    from gevent.threadpool import ThreadPool

    with _worker_lock:
        if _worker is None or _worker[0] != os.getpid():
            _worker = (os.getpid(), ThreadPool(1, idle_task_timeout=-1))
        return _worker[1]


def off_hub(fn: Callable[[], T]) -> T:
    """Run ``fn`` on this process's one store thread when gevent is patched in, else right here.

    The caller's greenlet waits; every other request keeps running while ``fn`` blocks. Calls take turns
    on that thread (a call from the thread itself runs inline).
    """
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return fn()

    def run() -> tuple[Any, BaseException | None]:
        try:
            return fn(), None
        except Exception as exc:  # noqa: BLE001 - raised again in the caller (gevent would print it)
            return None, exc

    result, error = _store_thread().apply(run)
    if error is not None:
        raise error
    return result


def hub_safe(store: Any, fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` (a method of ``store``), run through :func:`off_hub` when the store's driver blocks the hub."""
    if not blocks_hub(store):
        return fn
    return lambda *args, **kwargs: off_hub(lambda: fn(*args, **kwargs))


class Reloader:
    """Keeps ``gateway.snapshot`` at the store's revision."""

    def __init__(self, gateway: Any, store: Any, *, interval: float = 2.0, settings: Any = None):
        self.gateway = gateway
        self.store = store
        # Backends are built with the gateway's settings (``None``: each resolves its own).
        self._make = make_backend if settings is None else functools.partial(make_backend, settings=settings)
        # Looked up at call time: a gateway may be built over a store it never polls (tests, notebooks).
        self._revision = hub_safe(store, lambda: store.revision())
        self._load_config = hub_safe(store, lambda: store.load_config())
        self.interval = interval
        self.last_error: str | None = None
        self.last_poll: float | None = None
        self._retiring: list[tuple[float, list[Any]]] = []
        self._config_set: Any = None
        self._broken_revision: int | None = None
        self._listening: set[int] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> bool:
        """Check the revision once; return whether a new snapshot was swapped in."""
        try:
            revision = self._revision()
            current = self.gateway.snapshot
            if revision == current.revision:
                self._ok()
                return False
            config_set = self._load_config()
        except Exception as exc:  # noqa: BLE001 - any store failure: keep serving, report on /readyz
            self._failed(exc)
            return False
        self._ok()
        try:
            self._swap(config_set)
        except Exception:  # noqa: BLE001 - a bug in building one revision must not end reloads for good
            if self._broken_revision != config_set.revision:  # once per revision, not on every poll
                log.exception("config revision %s could not be built; serving revision %s",
                              config_set.revision, self.gateway.snapshot.revision)
                self.gateway.metrics.reloads.labels("error").inc()
            self._broken_revision = config_set.revision
            return False
        return True

    def _swap(self, config_set: Any) -> None:
        with self._lock:
            current = self.gateway.snapshot
            self._config_set = config_set
            new = build_snapshot(config_set, current, make=self._make)
            self.gateway.snapshot = new  # the swap: one assignment; in-flight calls keep their snapshot
        self._listen(new)
        self.gateway.metrics.reloads.labels("ok").inc()
        self.gateway.metrics.revision.set(new.revision)
        for key, problems in new.errors.items():
            log.warning("document %s not (re)loaded: %s", key, "; ".join(problems)[:2000])
        log.info("serving config revision %s (%d routes)", new.revision, len(new.routes))
        self._retire(retired_backends(current, new))
        if hasattr(self.gateway, "end_orphaned_sessions"):  # a removed or disabled router's sessions end now
            self.gateway.end_orphaned_sessions(current, new)
        self.notify_changes(new)
        self.notify_listeners(current, new)

    def _listen(self, snapshot: Any) -> None:
        for backend in snapshot.backends.values():
            if hasattr(backend, "add_listener") and id(backend) not in self._listening:
                self._listening.add(id(backend))
                backend.add_listener(lambda event, b=backend: self.backend_event(b, event))

    def backend_event(self, backend: Any, event: dict[str, Any]) -> None:
        """An upstream server's list changed: rebuild the tool tables, tell the sessions of its routes.

        ``event`` is ``{"type": "tools_changed"|"prompts_changed"|"resources_changed", "server": name}``.
        """
        kind = event.get("type", "")
        if kind == "tools_changed":
            if self._config_set is not None:
                self._swap(self._config_set)  # notify_changes sends tools/list_changed where lists changed
            return
        method = {"prompts_changed": "notifications/prompts/list_changed",
                  "resources_changed": "notifications/resources/list_changed"}.get(kind)
        if method is None:
            return
        snapshot = self.gateway.snapshot
        prefixes = {p for p, route in snapshot.routes.items() if any(b is backend for b in route.backends)}
        if hasattr(self.gateway, "announce"):
            for prefix in prefixes:
                self.gateway.announce(prefix, kind.split("_")[0])
        for session in self.gateway.sessions.list():
            if session.prefix in prefixes:
                self.gateway.sessions.deliver(session.id, {"jsonrpc": "2.0", "method": method})

    def _ok(self) -> None:
        self.last_poll = time.time()
        if self.last_error is not None:
            log.info("config store reachable again")
            self.last_error = None

    def _failed(self, exc: BaseException) -> None:
        self.last_poll = time.time()
        text = f"{type(exc).__name__}: {exc}"
        if self.last_error is None:
            log.error("config store unreachable, serving the last good config: %s", text)
            self.gateway.metrics.reloads.labels("error").inc()
        self.last_error = text

    def _retire(self, backends: list[Any]) -> None:
        now = time.monotonic()
        if backends:
            self._retiring.append((now, backends))
        # Closed one grace period later so calls still running on the old snapshot can finish.
        grace = max(30.0, self.interval * 2)
        keep = []
        for since, items in self._retiring:
            if now - since < grace:
                keep.append((since, items))
                continue
            for backend in items:
                try:
                    backend.close()
                except Exception as exc:  # noqa: BLE001
                    log.warning("closing backend %s: %s", getattr(backend, "name", backend), exc)
        self._retiring = keep

    def notify_changes(self, snapshot: Any) -> int:
        """Send ``tools/list_changed`` to each session whose visible tools changed; return how many."""
        sessions = self.gateway.sessions
        sent = 0
        for session in sessions.list():
            route = snapshot.routes.get(session.prefix)
            digest = route.digest if route is not None else ""
            if digest == session.tools_digest:
                continue
            session.tools_digest = digest
            sessions.save(session)
            if sessions.deliver(session.id, LIST_CHANGED):
                sent += 1
        return sent

    def notify_listeners(self, old: Any, new: Any) -> int:
        """Tell this process's ``subscriptions/listen`` streams what a swap changed; return how many were told.

        A prefix that is no longer served ends its streams gracefully, and so do streams watching resources
        on an upstream the new snapshot replaced or dropped. Otherwise each kind (tools,
        prompts, resources) whose offer differs between the snapshots is announced once per stream
        that asked for it.
        """
        if not hasattr(self.gateway, "listened_prefixes"):
            return 0
        from .mcp.core import offer_fingerprint

        told = 0
        old_names = {id(b): key for key, b in old.backends.items()}
        new_names = {id(b): key for key, b in new.backends.items()}
        for prefix in self.gateway.listened_prefixes():
            before, after = old.routes.get(prefix), new.routes.get(prefix)
            if after is None:
                self.gateway.close_listeners(prefix)
                continue
            if before is None:
                continue
            if hasattr(self.gateway, "close_stale_watchers"):  # resourceSubscriptions on a replaced upstream
                self.gateway.close_stale_watchers(prefix, after.backends)
            for kind in ("tools", "prompts", "resources"):
                if offer_fingerprint(before, kind, old_names) != offer_fingerprint(after, kind, new_names):
                    told += self.gateway.announce(prefix, kind)
        return told

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
                self.gateway.sessions.expire()
                if hasattr(self.gateway, "close_expired_sessions"):
                    self.gateway.close_expired_sessions()
                self._retire([])
            except Exception:  # noqa: BLE001 - the poller must survive any bug in one cycle
                log.exception("reload cycle failed")

    def start(self) -> None:
        """Start polling in the background."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="mcpgw-reloader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
