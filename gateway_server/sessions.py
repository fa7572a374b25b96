"""MCP sessions: a small store interface and its in-memory implementation.

The protocol code reads a :class:`Session`, changes it, and saves it back with
:meth:`SessionStore.save`; it never assumes the process that answers holds the
session's stream. Messages for a client go through :meth:`SessionStore.deliver`
and come out of :meth:`SessionStore.listen` wherever the stream is open, so a
Redis implementation can route them between workers and replicas.
"""

from __future__ import annotations

import abc
import queue
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Session:
    """One MCP session: who, which prefix, which protocol version, what the client declared."""

    id: str
    prefix: str
    transport: str  # "streamable" or "sse"
    protocol_version: str = ""
    client_info: dict[str, Any] = field(default_factory=dict)
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None
    tools_digest: str = ""  # what tools/list last showed, to decide on list_changed
    headers: dict[str, str] = field(default_factory=dict)  # SSE: the connect request's headers
    owner: str = ""  # who opened it (API key or token subject); "" on an open router
    created_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)


def new_id() -> str:
    """A random session id of visible ASCII characters."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True)
class SessionLimits:
    """How many sessions a store may hold: in all, per router prefix, per owner (``0``: no limit).

    The owner limit counts identified callers only (API keys, token subjects): the
    sessions of an open router share the owner ``""`` and are bounded by the others.
    """

    total: int = 0
    per_prefix: int = 0
    per_owner: int = 0


class SessionsFull(Exception):
    """Raised by :meth:`SessionStore.create` when a limit is reached; ``status`` is the HTTP answer (503, 429)."""

    def __init__(self, message: str, *, status: int, setting: str):
        self.status = status
        self.setting = setting
        super().__init__(message)


class SessionStore(abc.ABC):
    """Where sessions live and how messages reach their streams."""

    #: Whether :meth:`publish` and :meth:`subscribe` reach other processes (the Redis store's relay channels).
    relays = False
    #: Whether :meth:`attach` takes a sink for a session's messages (a stream without a listening greenlet).
    attaches = False

    @abc.abstractmethod
    def save(self, session: Session) -> None:
        """Create or update a session."""

    @abc.abstractmethod
    def get(self, session_id: str) -> Session | None:
        """The live session or ``None`` when unknown, expired or deleted (marks it used)."""

    @abc.abstractmethod
    def delete(self, session_id: str) -> bool:
        """End a session; ``False`` when it did not exist. Its open streams end."""

    @abc.abstractmethod
    def list(self, prefix: str | None = None) -> list[Session]:
        """Live sessions, optionally only those of one prefix."""

    @abc.abstractmethod
    def deliver(self, session_id: str, message: dict[str, Any]) -> bool:
        """Queue a message for the session's open stream(s); ``False`` when none is open."""

    @abc.abstractmethod
    def listen(self, session_id: str, *, timeout: float) -> Iterator[dict[str, Any] | None]:
        """Messages for this session as they arrive; ``None`` after ``timeout`` idle seconds (a heartbeat).

        Ends when the session is deleted. Closing the iterator stops listening.
        """

    def expire(self) -> int:
        """Remove sessions idle longer than the TTL; return how many (a no-op where the backend expires them)."""
        return 0

    def attach(self, session_id: str, sink: Any) -> bool:
        """Send the session's messages to ``sink.put(message)`` (and :data:`CLOSED` when it ends), as an open
        stream; ``False`` when the session is unknown. Only when :attr:`attaches`."""
        raise NotImplementedError(f"{type(self).__name__} does not attach sinks")

    def unattach(self, session_id: str, sink: Any) -> None:
        """Stop sending to ``sink`` (its stream ended); the session counts as used now."""
        raise NotImplementedError(f"{type(self).__name__} does not attach sinks")

    def count(self, *, prefix: str | None = None, owner: str | None = None) -> int:
        """How many sessions the store holds: all, those of one router ``prefix``, or of one ``owner``."""
        return sum(1 for s in self.list(prefix) if owner is None or s.owner == owner)

    def _over(self, session: Session, limits: SessionLimits) -> SessionsFull | None:
        if limits.per_owner and session.owner and self.count(owner=session.owner) >= limits.per_owner:
            return SessionsFull(f"too many sessions: this credential holds {limits.per_owner}, the limit "
                                "(max_sessions_per_principal); end unused sessions (DELETE) or retry later",
                                status=429, setting="max_sessions_per_principal")
        if limits.per_prefix and self.count(prefix=session.prefix) >= limits.per_prefix:
            return SessionsFull(f"too many sessions: {session.prefix} holds {limits.per_prefix}, the limit "
                                "(max_sessions_per_router); retry later", status=503,
                                setting="max_sessions_per_router")
        if limits.total and self.count() >= limits.total:
            return SessionsFull(f"too many sessions: this gateway holds {limits.total}, the limit (max_sessions); "
                                "retry later", status=503, setting="max_sessions")
        return None

    def create(self, session: Session, limits: SessionLimits) -> None:
        """Save a new session unless that would exceed ``limits``; raise :class:`SessionsFull` then.

        Nothing is evicted to make room. When a limit looks reached, idle sessions past
        their TTL are expired first and the counts taken again.
        """
        full = self._over(session, limits)
        if full is not None:
            self.expire()
            full = self._over(session, limits)
            if full is not None:
                raise full
        self.save(session)

    def publish(self, name: str, message: dict[str, Any]) -> int:
        """Send ``message`` on the relay channel ``name``; how many processes listen (only when ``relays``)."""
        raise NotImplementedError(f"{type(self).__name__} has no relay channels")

    def subscribe(self, name: str) -> Any:
        """A subscription to the relay channel ``name`` (``get(timeout)``, ``closed``, ``close()``; only when ``relays``)."""
        raise NotImplementedError(f"{type(self).__name__} has no relay channels")

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources."""


_CLOSED = object()
#: What a sink's ``put`` receives when its session ends.
CLOSED = _CLOSED


class MemorySessionStore(SessionStore):
    """Sessions in this process's memory (one process, or sticky routing)."""

    attaches = True

    def __init__(self, *, ttl: float = 3600.0):
        self.ttl = ttl
        self._sessions: dict[str, Session] = {}
        self._streams: dict[str, list[queue.Queue]] = {}
        self._lock = threading.Lock()
        self._by_prefix: Counter[str] = Counter()
        self._by_owner: Counter[str] = Counter()

    def save(self, session: Session) -> None:
        """Create or update a session."""
        with self._lock:
            old = self._sessions.get(session.id)
            self._sessions[session.id] = session
            if old is not None:
                self._uncount(old)
            self._by_prefix[session.prefix] += 1
            self._by_owner[session.owner] += 1

    def _uncount(self, session: Session) -> None:
        for counter, key in ((self._by_prefix, session.prefix), (self._by_owner, session.owner)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]

    def count(self, *, prefix: str | None = None, owner: str | None = None) -> int:
        """How many sessions: all, of one prefix, or of one owner (kept counts, no listing)."""
        if prefix is not None:
            return self._by_prefix.get(prefix, 0)
        if owner is not None:
            return self._by_owner.get(owner, 0)
        return len(self._sessions)

    def get(self, session_id: str) -> Session | None:
        """The live session or ``None``; marks it used."""
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = time.monotonic()
        if now - session.last_seen > self.ttl and not self._streams.get(session_id):
            self.delete(session_id)
            return None
        session.last_seen = now
        return session

    def delete(self, session_id: str) -> bool:
        """End a session and its streams."""
        with self._lock:
            old = self._sessions.pop(session_id, None)
            if old is not None:
                self._uncount(old)
            existed = old is not None
            streams = self._streams.pop(session_id, [])
        for q in streams:
            q.put(_CLOSED)
        return existed

    def list(self, prefix: str | None = None) -> list[Session]:
        """Live sessions, optionally of one prefix."""
        return [s for s in list(self._sessions.values()) if prefix is None or s.prefix == prefix]

    def deliver(self, session_id: str, message: dict[str, Any]) -> bool:
        """Queue a message on every open stream of the session."""
        streams = self._streams.get(session_id)
        if not streams:
            return False
        for q in list(streams):
            q.put(message)
        return True

    def listen(self, session_id: str, *, timeout: float) -> Iterator[dict[str, Any] | None]:
        """Messages (``None`` on idle timeouts) until the session ends or ``close()``; subscribed on return.

        Registering at once, not on the first ``next()``, matters: a stream yields its ``endpoint`` event
        before it reads this iterator, and a reply posted in between must not find the session deaf.
        """
        q: queue.Queue = queue.Queue()
        with self._lock:
            if session_id not in self._sessions:
                return iter(())
            self._streams.setdefault(session_id, []).append(q)
        return _MemoryListener(self, session_id, q, timeout)

    def _forget(self, session_id: str, q: queue.Queue) -> None:
        with self._lock:
            streams = self._streams.get(session_id)
            if streams and q in streams:
                streams.remove(q)
                if not streams:
                    del self._streams[session_id]

    def attach(self, session_id: str, sink: Any) -> bool:
        """Send the session's messages to ``sink.put`` until it ends (an open stream, without a greenlet)."""
        with self._lock:
            if session_id not in self._sessions:
                return False
            self._streams.setdefault(session_id, []).append(sink)
        return True

    def unattach(self, session_id: str, sink: Any) -> None:
        """Forget ``sink``; the session's idle time starts now (as after a listener's last message)."""
        with self._lock:
            streams = self._streams.get(session_id)
            if streams and sink in streams:
                streams.remove(sink)
                if not streams:
                    del self._streams[session_id]
            session = self._sessions.get(session_id)
            if session is not None:
                session.last_seen = time.monotonic()

    def expire(self) -> int:
        """Remove sessions idle longer than the TTL (an open stream keeps a session alive)."""
        now = time.monotonic()
        stale = [s.id for s in list(self._sessions.values())
                 if now - s.last_seen > self.ttl and not self._streams.get(s.id)]
        for sid in stale:
            self.delete(sid)
        return len(stale)


class _MemoryListener:
    """One open stream of a :class:`MemorySessionStore` session: an iterator over its queue."""

    __slots__ = ("store", "session_id", "q", "timeout", "closed")

    def __init__(self, store: MemorySessionStore, session_id: str, q: queue.Queue, timeout: float):
        self.store, self.session_id, self.q, self.timeout, self.closed = store, session_id, q, timeout, False

    def __iter__(self) -> _MemoryListener:
        return self

    def __next__(self) -> dict[str, Any] | None:
        if self.closed:
            raise StopIteration
        try:
            item = self.q.get(timeout=self.timeout)
        except queue.Empty:
            item = None
        if item is _CLOSED:
            self.close()
            raise StopIteration
        session = self.store._sessions.get(self.session_id)
        if session is not None:
            session.last_seen = time.monotonic()
        return item

    def close(self) -> None:
        """Stop listening (idempotent)."""
        if not self.closed:
            self.closed = True
            self.store._forget(self.session_id, self.q)
