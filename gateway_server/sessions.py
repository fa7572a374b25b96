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


class SessionStore(abc.ABC):
    """Where sessions live and how messages reach their streams."""

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

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources."""


_CLOSED = object()


class MemorySessionStore(SessionStore):
    """Sessions in this process's memory (one process, or sticky routing)."""

    def __init__(self, *, ttl: float = 3600.0):
        self.ttl = ttl
        self._sessions: dict[str, Session] = {}
        self._streams: dict[str, list[queue.Queue]] = {}
        self._lock = threading.Lock()

    def save(self, session: Session) -> None:
        """Create or update a session."""
        self._sessions[session.id] = session

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
            existed = self._sessions.pop(session_id, None) is not None
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
        """Yield messages (``None`` on idle timeouts) until the session ends or the iterator is closed."""
        q: queue.Queue = queue.Queue()
        with self._lock:
            if session_id not in self._sessions:
                return
            self._streams.setdefault(session_id, []).append(q)
        try:
            while True:
                try:
                    item = q.get(timeout=timeout)
                except queue.Empty:
                    item = None
                if item is _CLOSED:
                    return
                if session_id in self._sessions:
                    self._sessions[session_id].last_seen = time.monotonic()
                yield item
        finally:
            with self._lock:
                streams = self._streams.get(session_id)
                if streams and q in streams:
                    streams.remove(q)
                    if not streams:
                        del self._streams[session_id]

    def expire(self) -> int:
        """Remove sessions idle longer than the TTL (an open stream keeps a session alive)."""
        now = time.monotonic()
        stale = [s.id for s in list(self._sessions.values())
                 if now - s.last_seen > self.ttl and not self._streams.get(s.id)]
        for sid in stale:
            self.delete(sid)
        return len(stale)


def open_sessions(*, redis_url: str = "", ttl: float = 3600.0) -> SessionStore:
    """The session store the settings ask for (in memory unless ``redis_url`` is set)."""
    if redis_url:
        from .sessions_redis import RedisSessionStore

        return RedisSessionStore(redis_url, ttl=ttl)
    return MemorySessionStore(ttl=ttl)
