"""MCP sessions in Redis, so any worker or replica can serve any client.

A session is a JSON string under ``<prefix>session:<id>`` whose TTL is the
session TTL, refreshed on every :meth:`RedisSessionStore.get` (``GETEX``). A
sorted set ``<prefix>sessions`` indexes the ids for :meth:`~RedisSessionStore.list`.
Messages for a session are published on ``<prefix>stream:<id>``; each process
holds one subscriber connection (a :class:`_Hub`) that fans messages out to the
streams open in that process, so a thousand open streams cost one Redis
connection, not a thousand. ``PUBLISH`` returns how many processes listen,
which is what :meth:`~RedisSessionStore.deliver` reports.

Works under gevent (with the standard library patched, as the gateway's entry
points do) and in plain threads. Needs Redis 6.2 or later (``GETEX``).

>>> store = RedisSessionStore("redis://127.0.0.1:6379/0", ttl=3600)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
import redis.exceptions

from mcpgw_sdk.errors import ConfigError, StorageError

from .mcp import jsonrpc
from .sessions import Session, SessionStore

log = logging.getLogger("mcpgw.sessions")
T = TypeVar("T")

_MESSAGE, _CLOSE_PAYLOAD = b"m", b"x"  # first byte of a channel payload: a JSON-RPC message, or "session ended"
_CLOSED = object()
_FIELDS = tuple(f.name for f in dataclasses.fields(Session) if f.name != "last_seen")
_SUBSCRIBE_WAIT = 5.0
_MGET_CHUNK = 500


def _mask(url: str) -> str:
    return re.sub(r"//([^/@]*)@", lambda m: "//" + (m.group(1).split(":")[0] + ":***@"), url)


def _split_key_prefix(url: str, prefix: str) -> tuple[str, str]:
    """Take our own ``key_prefix`` query parameter out of a Redis URL (it overrides ``prefix``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    found = [value for name, value in query if name == "key_prefix"]
    if not found:
        return url, prefix
    if not found[-1]:
        raise ConfigError("redis_url: the key_prefix parameter is empty")
    rest = urlencode([(name, value) for name, value in query if name != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), found[-1]


def _encode(session: Session) -> bytes:
    return json.dumps({name: getattr(session, name) for name in _FIELDS}, separators=(",", ":"),
                      ensure_ascii=False).encode()


def _decode(raw: bytes) -> Session:
    data = json.loads(raw)
    return Session(**{name: data[name] for name in _FIELDS if name in data})


class _Hub:
    """One pub/sub connection per store: a reader thread routes channel messages to local queues."""

    def __init__(self, client: redis.Redis, *, url: str):
        self._client = client
        self._url = url
        self._pubsub = client.pubsub()
        self._queues: dict[bytes, list[queue.Queue]] = {}
        self._confirmed: dict[bytes, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def attach(self, channel: bytes) -> queue.Queue:
        """A queue receiving ``channel``'s messages, once Redis has confirmed the subscription."""
        q: queue.Queue = queue.Queue()
        with self._lock:
            if self._stop.is_set():
                raise StorageError("the Redis session store is closed")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mcpgw-redis-sessions", daemon=True)
                self._thread.start()
            listeners = self._queues.get(channel)
            if listeners is not None:
                listeners.append(q)
                confirmed = self._confirmed[channel]
            else:
                self._queues[channel] = [q]
                confirmed = self._confirmed[channel] = threading.Event()
                try:
                    # Sent under the lock so SUBSCRIBE/UNSUBSCRIBE of a channel reach Redis in the order decided here.
                    self._pubsub.subscribe(channel)
                except redis.exceptions.RedisError as exc:
                    del self._queues[channel], self._confirmed[channel]
                    raise StorageError(f"Redis at {_mask(self._url)}: cannot subscribe: {exc}") from exc
        # A message published after the confirmation is certain to reach us, so callers may then announce the
        # stream (the SSE endpoint event) without losing the client's first answer.
        if not confirmed.wait(_SUBSCRIBE_WAIT):
            self.detach(channel, q)
            raise StorageError(f"Redis at {_mask(self._url)} did not confirm a subscription within "
                               f"{_SUBSCRIBE_WAIT:g} s")
        return q

    def detach(self, channel: bytes, q: queue.Queue) -> None:
        """Stop routing ``channel`` to ``q``; unsubscribe when no local stream listens any more."""
        with self._lock:
            listeners = self._queues.get(channel)
            if listeners is None or q not in listeners:
                return
            listeners.remove(q)
            if listeners:
                return
            del self._queues[channel]
            self._confirmed.pop(channel, None)
            if self._stop.is_set():
                return
            try:
                self._pubsub.unsubscribe(channel)
            except redis.exceptions.RedisError as exc:
                log.warning("Redis sessions: unsubscribe failed (the reconnect drops it): %s", exc)

    def _run(self) -> None:
        backoff = 0.0
        while not self._stop.is_set():
            try:
                message = self._pubsub.get_message(timeout=1.0)
            except Exception as exc:  # noqa: BLE001 - the reader must survive Redis restarts
                if self._stop.is_set():
                    return
                if not backoff:
                    log.warning("Redis sessions: subscriber connection lost, reconnecting: %s", exc)
                backoff = min(backoff * 2 or 0.25, 5.0)
                self._stop.wait(backoff)
                continue
            if backoff:
                log.warning("Redis sessions: subscriber connection restored")
                backoff = 0.0
            if message is not None:
                self._route(message)

    def _route(self, message: dict[str, Any]) -> None:
        kind, channel, data = message.get("type"), message.get("channel"), message.get("data")
        if kind == "subscribe":
            with self._lock:
                confirmed = self._confirmed.get(channel)
            if confirmed is not None:
                confirmed.set()
            return
        if kind != "message" or not isinstance(data, bytes):
            return
        if data[:1] == _MESSAGE:
            try:
                item: Any = json.loads(data[1:])
            except ValueError:
                log.warning("Redis sessions: dropped an undecodable message on %r", channel)
                return
        elif data == _CLOSE_PAYLOAD:
            item = _CLOSED
        else:
            return
        with self._lock:
            listeners = list(self._queues.get(channel, ()))
        for q in listeners:
            q.put(item)

    def close(self) -> None:
        """End every local stream and the reader thread, and drop the subscriber connection."""
        with self._lock:
            self._stop.set()
            listeners = [q for qs in self._queues.values() for q in qs]
            self._queues.clear()
            self._confirmed.clear()
        for q in listeners:
            q.put(_CLOSED)
        try:
            self._pubsub.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
        # Not joined: the reader notices the stop flag within a second and holds nothing worth waiting for.


class Subscription:
    """A relay channel's messages (:meth:`RedisSessionStore.subscribe`), subscribed before it is returned."""

    def __init__(self, hub: _Hub, channel: bytes):
        self._hub = hub
        self._channel = channel
        self._queue: queue.Queue | None = hub.attach(channel)

    @property
    def closed(self) -> bool:
        """Whether it was closed (by :meth:`close` or because the store closed)."""
        return self._queue is None

    def get(self, timeout: float) -> dict[str, Any] | None:
        """The next message, or ``None`` after ``timeout`` seconds or once closed."""
        q = self._queue
        if q is None:
            return None
        try:
            item = q.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return None
        if item is _CLOSED:
            self.close()
            return None
        return item

    def close(self) -> None:
        """Stop listening (idempotent)."""
        q, self._queue = self._queue, None
        if q is not None:
            self._hub.detach(self._channel, q)
            q.put(_CLOSED)


class _Listener:
    """The iterator :meth:`RedisSessionStore.listen` returns (subscribed before it is returned)."""

    def __init__(self, store: RedisSessionStore, session_id: str, timeout: float):
        self._store = store
        self._id = session_id
        self._timeout = timeout
        self._subscription = Subscription(store._hub(), store._channel(session_id))
        # Keep the session alive while its stream is open, as the in-memory store does; checking at each
        # heartbeat also ends a stream whose close marker was lost while the subscriber reconnected.
        self._refresh_every = max(min(store.ttl / 3.0, max(timeout, 1.0)), 0.05)
        self._next_refresh = time.monotonic() + self._refresh_every
        try:
            exists = store._call(lambda c: c.exists(store._key(session_id)))
        except BaseException:
            self.close()
            raise
        if not exists:  # checked after subscribing: a delete in between still ends this stream
            self.close()

    def __iter__(self) -> _Listener:
        return self

    def __next__(self) -> dict[str, Any] | None:
        subscription = self._subscription
        if subscription.closed:
            raise StopIteration
        deadline = time.monotonic() + self._timeout
        while True:
            now = time.monotonic()
            if now >= self._next_refresh:
                self._next_refresh = now + self._refresh_every
                try:
                    alive = self._store._touch(self._id)
                except StorageError as exc:  # a Redis blip must not cut the stream; the next wake-up retries
                    log.warning("Redis sessions: cannot refresh session %s: %s", self._id[:8], exc)
                    alive = True
                if not alive:
                    self.close()
                    raise StopIteration
            if now >= deadline:
                return None
            item = subscription.get(max(min(deadline, self._next_refresh) - now, 0.0))
            if item is not None:
                return item
            if subscription.closed:  # the session ended (its close marker), or close() from another thread
                raise StopIteration

    def close(self) -> None:
        """Stop listening (idempotent)."""
        self._subscription.close()


class RedisSessionStore(SessionStore):
    """Sessions in Redis, shared by every gunicorn worker and replica that uses the same URL and prefix.

    ``ttl`` is how long an unused session lives (seconds); ``prefix`` starts every
    key and channel, so several gateways (or tests) can share one Redis. A
    ``key_prefix`` query parameter in ``url`` (``redis://host:6379/0?key_prefix=prod:``)
    overrides ``prefix``, so the one ``MCPGW_REDIS_URL`` setting can separate gateways.

    >>> store = RedisSessionStore("redis://127.0.0.1:6379/0", ttl=600)  # doctest: +SKIP
    >>> store.save(Session(id="abc", prefix="/gateway/demo", transport="streamable"))  # doctest: +SKIP
    >>> store.get("abc").prefix  # doctest: +SKIP
    '/gateway/demo'
    """

    def __init__(self, url: str, *, ttl: float, prefix: str = "mcpgw:"):
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"redis_url: {url!r} is not a Redis URL (redis://host:port/db, rediss://…, unix://…)")
        if not isinstance(ttl, (int, float)) or isinstance(ttl, bool) or ttl <= 0:
            raise ConfigError(f"session_ttl: {ttl!r} must be a positive number of seconds")
        if not isinstance(prefix, str):
            raise ConfigError(f"prefix: {prefix!r} must be a string")
        url, prefix = _split_key_prefix(url, prefix)
        self.url = url
        self.ttl = float(ttl)
        self.prefix = prefix
        try:
            self._client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10,
                                                health_check_interval=0)
        except ValueError as exc:
            raise ConfigError(f"redis_url: {_mask(url)}: {exc}") from exc
        self._index = f"{prefix}sessions".encode()
        # Who holds which sessions, for the session limits: a hash id -> [prefix, owner] and one sorted set
        # per router prefix and per owner (ZCARD counts them; delete and expire keep them in step).
        self._meta = f"{prefix}session-meta".encode()
        self._hub_obj: _Hub | None = None
        self._hub_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisSessionStore({_mask(self.url)!r}, ttl={self.ttl:g}, prefix={self.prefix!r})"

    # -- keys and plumbing ---------------------------------------------------
    def _key(self, session_id: str) -> bytes:
        return f"{self.prefix}session:{session_id}".encode()

    def _by_prefix(self, prefix: str) -> bytes:
        return f"{self.prefix}sessions-of-router:{prefix}".encode()

    def _by_owner(self, owner: str) -> bytes:
        return f"{self.prefix}sessions-of-owner:{owner}".encode()

    def _unindex(self, pipe: Any, session_id: str | bytes, meta: bytes | None) -> None:
        if meta is None:
            return
        try:
            prefix, owner = json.loads(meta)
        except ValueError:
            return
        pipe.zrem(self._by_prefix(prefix), session_id)
        if owner:
            pipe.zrem(self._by_owner(owner), session_id)

    def _channel(self, session_id: str) -> bytes:
        return f"{self.prefix}stream:{session_id}".encode()

    @property
    def _ttl_ms(self) -> int:
        return max(int(self.ttl * 1000), 1)

    def _call(self, func: Callable[[redis.Redis], T]) -> T:
        try:
            return func(self._client)
        except redis.exceptions.RedisError as exc:
            raise StorageError(f"Redis at {_mask(self.url)}: {exc}") from exc

    def _hub(self) -> _Hub:
        with self._hub_lock:
            if self._hub_obj is None:
                self._hub_obj = _Hub(self._client, url=self.url)
            return self._hub_obj

    def _touch(self, session_id: str) -> bool:
        return bool(self._call(lambda c: c.pexpire(self._key(session_id), self._ttl_ms)))

    # -- the SessionStore interface ------------------------------------------
    def save(self, session: Session) -> None:
        """Create or update a session (and restart its TTL)."""
        def run(c: redis.Redis) -> None:
            pipe = c.pipeline(transaction=False)
            now = time.time()
            pipe.set(self._key(session.id), _encode(session), px=self._ttl_ms)
            pipe.zadd(self._index, {session.id: now + self.ttl})
            pipe.hset(self._meta, session.id, json.dumps([session.prefix, session.owner]))
            pipe.zadd(self._by_prefix(session.prefix), {session.id: now}, nx=True)
            if session.owner:
                pipe.zadd(self._by_owner(session.owner), {session.id: now}, nx=True)
            pipe.execute()

        self._call(run)

    def get(self, session_id: str) -> Session | None:
        """The live session or ``None`` when unknown, expired or deleted; restarts its TTL."""
        raw = self._call(lambda c: c.getex(self._key(session_id), px=self._ttl_ms))
        if raw is None:
            return None
        return _decode(raw)

    def delete(self, session_id: str) -> bool:
        """End a session; its streams end in every process. ``False`` when it did not exist."""
        def run(c: redis.Redis) -> list:
            meta = c.hget(self._meta, session_id)
            pipe = c.pipeline(transaction=False)
            pipe.delete(self._key(session_id))
            pipe.zrem(self._index, session_id)
            pipe.publish(self._channel(session_id), _CLOSE_PAYLOAD)
            pipe.hdel(self._meta, session_id)
            self._unindex(pipe, session_id, meta)
            return pipe.execute()

        return bool(self._call(run)[0])

    def list(self, prefix: str | None = None) -> list[Session]:
        """Live sessions, optionally only those of one prefix (one ``ZRANGE`` and chunked ``MGET``)."""
        ids = self._call(lambda c: c.zrange(self._index, 0, -1))
        out: list[Session] = []
        for start in range(0, len(ids), _MGET_CHUNK):
            chunk = ids[start:start + _MGET_CHUNK]
            keys = [self.prefix.encode() + b"session:" + sid for sid in chunk]
            for raw in self._call(lambda c, keys=keys: c.mget(keys)):
                if raw is None:
                    continue
                session = _decode(raw)
                if prefix is None or session.prefix == prefix:
                    out.append(session)
        return out

    def count(self, *, prefix: str | None = None, owner: str | None = None) -> int:
        """How many sessions: all, of one prefix, or of one owner (one ``ZCARD``; :meth:`expire` prunes)."""
        key = self._by_prefix(prefix) if prefix is not None else self._by_owner(owner) if owner is not None \
            else self._index
        return int(self._call(lambda c: c.zcard(key)))

    def deliver(self, session_id: str, message: dict[str, Any]) -> bool:
        """Publish a message to the session's stream(s); ``False`` when no process has one open."""
        payload = _MESSAGE + jsonrpc.dumps(message)
        return self._call(lambda c: c.publish(self._channel(session_id), payload)) > 0

    def listen(self, session_id: str, *, timeout: float) -> Iterator[dict[str, Any] | None]:
        """Messages for this session; ``None`` after ``timeout`` idle seconds. Subscribed on return.

        Ends when the session is deleted (by any process) or expires; ``close()`` stops listening.
        """
        return _Listener(self, session_id, timeout)

    # -- relay channels: messages between processes that are not a session's (held MRTR calls) --
    relays = True

    def _relay(self, name: str) -> bytes:
        return f"{self.prefix}relay:{name}".encode()

    def publish(self, name: str, message: dict[str, Any]) -> int:
        """Send ``message`` on the relay channel ``name``; how many processes listen to it."""
        payload = _MESSAGE + jsonrpc.dumps(message)
        return int(self._call(lambda c: c.publish(self._relay(name), payload)))

    def subscribe(self, name: str) -> Subscription:
        """Listen on the relay channel ``name`` (through this process's one subscriber connection)."""
        return Subscription(self._hub(), self._relay(name))

    def expire(self) -> int:
        """Drop index entries of sessions Redis has expired; return how many (cheap: only overdue ids)."""
        now = time.time()
        overdue = self._call(lambda c: c.zrangebyscore(self._index, "-inf", now))
        if not overdue:
            return 0

        def run(c: redis.Redis) -> int:
            pipe = c.pipeline(transaction=False)
            for sid in overdue:
                pipe.pttl(self.prefix.encode() + b"session:" + sid)
            ttls = pipe.execute()
            metas = c.hmget(self._meta, overdue)
            pipe = c.pipeline(transaction=False)
            gone = 0
            for sid, left, meta in zip(overdue, ttls, metas, strict=True):
                if left == -2:  # the key no longer exists
                    pipe.zrem(self._index, sid)
                    pipe.hdel(self._meta, sid)
                    self._unindex(pipe, sid, meta)
                    gone += 1
                else:  # used since it was indexed: re-index with its real deadline
                    pipe.zadd(self._index, {sid: now + (left / 1000 if left > 0 else self.ttl)}, xx=True)
            pipe.execute()
            return gone

        return self._call(run)

    def close(self) -> None:
        """End local streams and release the connections."""
        with self._hub_lock:
            hub, self._hub_obj = self._hub_obj, None
        if hub is not None:
            hub.close()
        self._client.close()
