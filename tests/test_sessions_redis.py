"""The session store contract, run against the in-memory store and the Redis store (real Redis)."""

from __future__ import annotations

import queue
import threading
import time
import uuid

import pytest

from gateway_server.sessions import MemorySessionStore, Session, new_id
from gateway_server.sessions_redis import RedisSessionStore
from mcpgw_sdk.errors import ConfigError, StorageError
from tests.helpers import drop_keys, free_port, key_prefix, redis_available, unavailable, wait_for


@pytest.fixture(params=["memory", "redis"])
def make_store(request):
    """``make_store(ttl=…)`` → a fresh store of the parametrized kind (Redis: a unique key prefix)."""
    stores = []
    prefix = key_prefix()
    url = redis_available() if request.param == "redis" else ""

    def make(*, ttl: float = 60.0):
        store = RedisSessionStore(url, ttl=ttl, prefix=prefix) if url else MemorySessionStore(ttl=ttl)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()
    if url:
        drop_keys(prefix)


@pytest.fixture
def redis_pair(redis_url):
    """Two Redis stores on one prefix: two processes' views of the same sessions."""
    prefix = key_prefix()
    a, b = RedisSessionStore(redis_url, ttl=60, prefix=prefix), RedisSessionStore(redis_url, ttl=60, prefix=prefix)
    yield a, b
    a.close()
    b.close()
    drop_keys(prefix)


@pytest.fixture
def redis_store(redis_url):
    """A RedisSessionStore (ttl 60) on a fresh key prefix; closed and its keys dropped at teardown."""
    store = RedisSessionStore(redis_url, ttl=60, prefix=key_prefix())
    yield store
    store.close()
    drop_keys(store.prefix)


def session(prefix: str = "/gateway/demo", **kw) -> Session:
    return Session(id=new_id(), prefix=prefix, transport=kw.pop("transport", "streamable"), **kw)


class Reader:
    """Iterate ``store.listen`` in a thread; items land in ``items``; ``done`` is set when it ends."""

    def __init__(self, store, session_id: str, *, timeout: float = 5.0):
        self.items: queue.Queue = queue.Queue()
        self.done = threading.Event()
        self.listener = None
        self.thread = threading.Thread(target=self._run, args=(store, session_id, timeout), daemon=True)
        self.thread.start()

    def _run(self, store, session_id, timeout):
        try:
            self.listener = store.listen(session_id, timeout=timeout)
            for item in self.listener:
                self.items.put(item)
        finally:
            self.done.set()

    def next_message(self, timeout: float = 5.0):
        deadline = time.monotonic() + timeout
        while True:
            item = self.items.get(timeout=max(deadline - time.monotonic(), 0.01))
            if item is not None:
                return item


def subscribed(store, sid: str) -> None:
    """Deliver a probe until a listener takes it (deliver is False until one is subscribed)."""
    wait_for(lambda: store.deliver(sid, {"jsonrpc": "2.0", "method": "probe"}), what=f"a listener on {sid}")


# -- the contract, on both stores ---------------------------------------------

def test_save_get_round_trip(make_store):
    store = make_store()
    s = session(transport="sse", protocol_version="2025-06-18", client_info={"name": "t", "version": "1"},
                client_capabilities={"sampling": {}}, log_level="debug", tools_digest="abc",
                headers={"authorization": "Bearer x"})
    store.save(s)
    got = store.get(s.id)
    assert got is not None
    for name in ("id", "prefix", "transport", "protocol_version", "client_info", "client_capabilities",
                 "log_level", "tools_digest", "headers"):
        assert getattr(got, name) == getattr(s, name), name
    assert store.get("no-such-session") is None


def test_save_updates(make_store):
    store = make_store()
    s = session()
    store.save(s)
    s.protocol_version, s.tools_digest = "2025-11-25", "d2"
    store.save(s)
    got = store.get(s.id)
    assert (got.protocol_version, got.tools_digest) == ("2025-11-25", "d2")


def test_delete(make_store):
    store = make_store()
    s = session()
    store.save(s)
    assert store.delete(s.id) is True
    assert store.get(s.id) is None
    assert store.delete(s.id) is False
    assert s.id not in {x.id for x in store.list()}


def test_list_all_and_by_prefix(make_store):
    store = make_store()
    a1, a2, b1 = session("/a"), session("/a"), session("/b/c")
    for s in (a1, a2, b1):
        store.save(s)
    assert {s.id for s in store.list()} == {a1.id, a2.id, b1.id}
    assert {s.id for s in store.list("/a")} == {a1.id, a2.id}
    assert [s.id for s in store.list("/b/c")] == [b1.id]
    assert store.list("/none") == []


def test_expiry_by_ttl(make_store):
    store = make_store(ttl=0.4)
    s = session()
    store.save(s)
    keep = session()
    store.save(keep)
    # get marks a session used: keep using one of the two for longer than the TTL
    until = time.monotonic() + 1.0
    while time.monotonic() < until:
        assert store.get(keep.id) is not None
        time.sleep(0.1)

    def gone():
        store.expire()
        return s.id not in {x.id for x in store.list()}

    wait_for(gone, timeout=5, what="the idle session to expire")
    assert store.get(s.id) is None


def test_deliver_to_listener_in_another_thread(make_store):
    store = make_store()
    s = session()
    store.save(s)
    reader = Reader(store, s.id)
    subscribed(store, s.id)
    assert reader.next_message()["method"] == "probe"
    for i in range(3):
        assert store.deliver(s.id, {"jsonrpc": "2.0", "id": i, "result": {"n": i}}) is True
    assert [reader.next_message()["result"]["n"] for _ in range(3)] == [0, 1, 2]
    store.delete(s.id)
    assert reader.done.wait(5)


def test_deliver_without_listener_is_false(make_store):
    store = make_store()
    s = session()
    store.save(s)
    assert store.deliver(s.id, {"jsonrpc": "2.0", "method": "x"}) is False
    assert store.deliver("no-such-session", {"jsonrpc": "2.0", "method": "x"}) is False


def test_listen_is_subscribed_when_it_returns(make_store):
    # A stream yields its endpoint event before it first reads its listener: a reply posted in between
    # must reach the listener, not find the session without a stream.
    store = make_store()
    s = session()
    store.save(s)
    listener = store.listen(s.id, timeout=5)
    try:
        assert store.deliver(s.id, {"jsonrpc": "2.0", "id": 1, "result": {}}) is True
        assert next(iter(listener)) == {"jsonrpc": "2.0", "id": 1, "result": {}}
    finally:
        listener.close()
    assert store.deliver(s.id, {"jsonrpc": "2.0", "method": "x"}) is False


def test_delete_ends_listen_loop(make_store):
    store = make_store()
    s = session()
    store.save(s)
    reader = Reader(store, s.id, timeout=30)
    subscribed(store, s.id)
    assert store.delete(s.id)
    assert reader.done.wait(5), "delete did not end the listener"
    assert store.deliver(s.id, {"jsonrpc": "2.0", "method": "x"}) is False


def test_listen_unknown_session_ends_at_once(make_store):
    store = make_store()
    listener = store.listen("no-such-session", timeout=5)
    started = time.monotonic()
    assert list(listener) == []
    assert time.monotonic() - started < 2


def test_heartbeat_none_when_idle(make_store):
    store = make_store()
    s = session()
    store.save(s)
    listener = store.listen(s.id, timeout=0.1)
    try:
        assert next(iter(listener)) is None
        assert next(iter(listener)) is None
    finally:
        listener.close()


def test_open_stream_keeps_session_alive(make_store):
    store = make_store(ttl=0.5)
    s = session()
    store.save(s)
    reader = Reader(store, s.id, timeout=0.05)
    subscribed(store, s.id)
    until = time.monotonic() + 1.2  # well past the TTL with no get()
    while time.monotonic() < until:
        time.sleep(0.1)
    store.expire()
    assert s.id in {x.id for x in store.list()}
    store.delete(s.id)
    assert reader.done.wait(5)


# -- Redis only: several processes' views, errors, connection economy -----------

def test_two_stores_share_sessions_and_streams(redis_pair):
    a, b = redis_pair
    s = session(transport="sse")
    a.save(s)
    assert b.get(s.id).transport == "sse"
    reader = Reader(a, s.id, timeout=30)
    subscribed(b, s.id)
    assert reader.next_message()["method"] == "probe"
    assert b.deliver(s.id, {"jsonrpc": "2.0", "id": 7, "result": {}}) is True
    assert reader.next_message()["id"] == 7
    assert b.delete(s.id) is True
    assert reader.done.wait(5), "a delete in another process did not end the stream"
    assert a.get(s.id) is None


def test_expire_prunes_the_index(redis_url):
    import redis

    url = redis_url
    prefix = key_prefix()
    store = RedisSessionStore(url, ttl=0.2, prefix=prefix)
    client = redis.Redis.from_url(url)
    try:
        s = session()
        store.save(s)
        assert client.zscore(f"{prefix}sessions", s.id) is not None
        wait_for(lambda: store.expire() == 1, timeout=5, what="expire() to prune the expired session")
        assert client.zscore(f"{prefix}sessions", s.id) is None
        assert store.expire() == 0
    finally:
        store.close()
        client.close()
        drop_keys(prefix)


def test_one_subscriber_connection_per_store(redis_url):
    import redis

    url = redis_url
    name = f"mcpgw-test-{uuid.uuid4().hex[:12]}"
    store = RedisSessionStore(f"{url}?client_name={name}", ttl=60, prefix=name + ":")
    client = redis.Redis.from_url(url)
    readers = []
    try:
        ids = [session().id for _ in range(10)]
        for sid in ids:
            store.save(Session(id=sid, prefix="/p", transport="sse"))
            readers.append(Reader(store, sid, timeout=30))
        for sid in ids:
            subscribed(store, sid)
        pubsub = [c for c in client.client_list(_type="pubsub") if c.get("name") == name]
        assert len(pubsub) == 1, pubsub
        assert int(pubsub[0]["sub"]) == 10
        for sid in ids:
            store.delete(sid)
        assert all(r.done.wait(5) for r in readers)
        wait_for(lambda: all(int(c["sub"]) == 0 for c in client.client_list(_type="pubsub")
                             if c.get("name") == name), timeout=5, what="unsubscribes")
    finally:
        store.close()
        client.close()
        drop_keys(name + ":")


def test_close_ends_local_streams(redis_store):
    store = redis_store
    s = session()
    store.save(s)
    reader = Reader(store, s.id, timeout=30)
    subscribed(store, s.id)
    # The listener is subscribed before its constructor's last Redis call returns: wait for it, or close()
    # would pull the connection from under that call.
    wait_for(lambda: reader.listener is not None, what="the listener constructed")
    store.close()
    assert reader.done.wait(5)


def test_bad_settings_name_the_field():
    with pytest.raises(ConfigError, match="redis_url"):
        RedisSessionStore("http://127.0.0.1:6379", ttl=60)
    with pytest.raises(ConfigError, match="session_ttl"):
        RedisSessionStore("redis://127.0.0.1:6379/0", ttl=0)


def test_unreachable_redis_is_a_storage_error():
    store = RedisSessionStore(f"redis://:secret@127.0.0.1:{free_port()}/0", ttl=60)
    try:
        with pytest.raises(StorageError) as info:
            store.get("x")
        assert "secret" not in str(info.value)
        assert isinstance(info.value, ConnectionError)
    finally:
        store.close()


def test_two_streams_of_one_session_in_one_process(redis_store):
    store = redis_store
    s = session()
    store.save(s)
    first, second = Reader(store, s.id, timeout=30), Reader(store, s.id, timeout=30)
    # listen() returns once subscribed, so both streams are live when both readers hold a listener
    wait_for(lambda: first.listener and second.listener, what="both listeners")
    assert store.deliver(s.id, {"jsonrpc": "2.0", "id": 1, "result": {}})
    assert first.next_message()["id"] == 1 and second.next_message()["id"] == 1
    first.listener.close()  # one stream ends; the session's channel stays subscribed for the other
    assert store.deliver(s.id, {"jsonrpc": "2.0", "id": 2, "result": {}})
    assert second.next_message()["id"] == 2
    assert first.done.wait(5), "close() from another thread did not end the first stream"
    store.delete(s.id)
    assert second.done.wait(5)


def test_key_prefix_in_the_url(redis_url):
    import redis

    url = redis_url
    prefix = key_prefix()
    store = RedisSessionStore(f"{url}?key_prefix={prefix}&client_name=mcpgw-test", ttl=60)
    client = redis.Redis.from_url(url)
    try:
        assert store.prefix == prefix and "key_prefix" not in store.url and "client_name=mcpgw-test" in store.url
        s = session()
        store.save(s)
        assert client.exists(f"{prefix}session:{s.id}")
    finally:
        store.close()
        client.close()
        drop_keys(prefix)
    with pytest.raises(ConfigError, match="key_prefix"):
        RedisSessionStore(f"{url}?key_prefix=", ttl=60)


GEVENT_SCRIPT = r"""
import json, sys
from gevent import monkey
monkey.patch_all()
import gevent
from gateway_server.sessions import Session, new_id
from gateway_server.sessions_redis import RedisSessionStore

store = RedisSessionStore(sys.argv[1], ttl=60, prefix=sys.argv[2])
s = Session(id=new_id(), prefix="/p", transport="sse")
store.save(s)
got, ticks = [], [0]

def listen():
    for item in store.listen(s.id, timeout=0.05):
        got.append(item)

def tick():
    while True:
        ticks[0] += 1
        gevent.sleep(0.01)

listener, ticker = gevent.spawn(listen), gevent.spawn(tick)
while not store.deliver(s.id, {"n": 1}):
    gevent.sleep(0.01)
gevent.sleep(0.5)
store.delete(s.id)
listener.join(5)
ticker.kill()
store.close()
print(json.dumps({"ended": listener.dead, "messages": [m for m in got if m], "heartbeats": got.count(None),
                  "ticks": ticks[0]}))
"""


def test_cooperative_under_gevent(redis_url):
    import json
    import subprocess

    from tests.helpers import ROOT, python

    url = redis_url
    prefix = key_prefix()
    try:
        out = subprocess.run([python(), "-c", GEVENT_SCRIPT, url, prefix], capture_output=True, text=True, timeout=60,
                             cwd=ROOT)
        assert out.returncode == 0, out.stderr[-3000:]
        result = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        drop_keys(prefix)
    assert result["ended"] and result["messages"] == [{"n": 1}]
    assert result["heartbeats"] >= 3  # idle timeouts while waiting on Redis
    assert result["ticks"] >= 20  # other greenlets ran while the listener waited


def test_streams_survive_a_redis_restart(procs, tmp_path):
    import shutil

    import redis

    server = shutil.which("redis-server")
    if not server:
        unavailable("redis-server is not on PATH")
    port = free_port()
    # save points make Redis write its data on SIGTERM, and load it again on start: a restart, not a wipe
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp_path), "--save", "3600 1",
            "--appendonly", "no"]

    def up():
        client = redis.Redis(port=port, socket_connect_timeout=1)
        try:
            return client.ping()
        finally:
            client.close()

    first = procs.start(args, name="redis")
    wait_for(up, what="the private redis-server")
    store = RedisSessionStore(f"redis://127.0.0.1:{port}/0", ttl=60, prefix="t:")
    try:
        s = session(transport="sse")
        store.save(s)
        reader = Reader(store, s.id, timeout=30)
        subscribed(store, s.id)
        assert reader.next_message()["method"] == "probe"
        assert first.stop() == 0
        procs.start(args, name="redis")
        wait_for(up, what="the restarted redis-server")
        assert store.get(s.id) is not None
        # the subscriber reconnects and subscribes again by itself
        wait_for(lambda: store.deliver(s.id, {"jsonrpc": "2.0", "id": 5, "result": {}}), timeout=15,
                 what="the stream to be subscribed again")
        assert reader.next_message()["id"] == 5
        assert not reader.done.is_set()
        store.delete(s.id)
        assert reader.done.wait(5)
    finally:
        store.close()


def test_relay_channels_reach_another_store(redis_pair):
    a, b = redis_pair
    assert a.relays and not MemorySessionStore().relays
    assert a.publish("held:w1", {"n": 1}) == 0  # nobody listens yet: the sender can tell
    subscription = b.subscribe("held:w1")
    try:
        assert a.publish("held:w1", {"n": 2, "text": "é"}) == 1
        assert subscription.get(5.0) == {"n": 2, "text": "é"}
        assert subscription.get(0.05) is None  # idle
    finally:
        subscription.close()
    assert subscription.closed and subscription.get(0.05) is None
    wait_for(lambda: a.publish("held:w1", {"n": 3}) == 0, timeout=5, what="the unsubscribe to reach Redis")
