"""Session limits (global, per router, per principal) and the size limit on ``initialize`` params."""

from __future__ import annotations

import json

import pytest
import requests

from gateway_server.sessions import MemorySessionStore, Session, SessionLimits, SessionsFull
from tests.fixtures_gateway import SseStream, demo_document
from tests.helpers import drop_keys, key_prefix

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
LOCKED = "/gateway/locked"


def hello(capabilities=None):
    return {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": capabilities or {},
                       "clientInfo": {"name": "t", "version": "1"}}}


def open_session(url, secret=None):
    headers = dict(ACCEPT)
    if secret:
        headers["Authorization"] = f"Bearer {secret}"
    return requests.post(url, json=hello(), headers=headers, timeout=5)


def assert_full(resp, status, setting):
    assert resp.status_code == status, resp.text
    assert "Mcp-Session-Id" not in resp.headers
    body = resp.json()
    assert body["error"]["code"] == -32000 and setting in body["error"]["message"], body
    assert body["id"] == 1


def test_session_limits_refuse_new_sessions_and_evict_nothing(seeded_store, start_gateway):
    store, url, backend = seeded_store
    doc = demo_document(backend, name="locked", prefix=LOCKED)
    doc["routers"][0]["auth"] = {"mode": "apikey"}
    store.save_document(doc)
    store.create_user("alice", "a-long-password", tenants=["default"])
    keys = [store.create_key("alice", "default")[1] for _ in range(3)]
    gw = start_gateway(url, env={"MCPGW_MAX_SESSIONS": "6", "MCPGW_MAX_SESSIONS_PER_ROUTER": "4",
                                 "MCPGW_MAX_SESSIONS_PER_PRINCIPAL": "2"})
    gw.wait_revision(store.revision())
    locked = gw.mcp_url(LOCKED)

    first = [open_session(locked, keys[0]) for _ in range(2)]
    assert all(r.status_code == 200 for r in first)
    assert_full(open_session(locked, keys[0]), 429, "max_sessions_per_principal")
    # ending one of its sessions makes room for that credential again
    gone = first.pop()
    auth = {**ACCEPT, "Authorization": f"Bearer {keys[0]}"}
    assert requests.delete(locked, headers={**auth, "Mcp-Session-Id": gone.headers["Mcp-Session-Id"]},
                           timeout=5).status_code == 200
    first.append(open_session(locked, keys[0]))
    assert first[-1].status_code == 200

    assert all(open_session(locked, keys[1]).status_code == 200 for _ in range(2))
    assert_full(open_session(locked, keys[2]), 503, "max_sessions_per_router")

    assert all(open_session(gw.mcp_url()).status_code == 200 for _ in range(2))
    refused = open_session(gw.mcp_url())
    assert_full(refused, 503, "max_sessions")
    assert refused.headers.get("Retry-After")
    sse = requests.get(gw.sse_url(), headers={"Accept": "text/event-stream"}, timeout=5)
    assert sse.status_code == 503 and sse.json()["error"]["code"] == -32000

    # nothing was evicted: the first sessions still answer
    for resp in first:
        listed = requests.post(locked, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                               headers={**auth, "Mcp-Session-Id": resp.headers["Mcp-Session-Id"]}, timeout=5)
        assert listed.status_code == 200 and listed.json()["result"]["tools"]
    assert gw.readyz()["sessions"] == 6


def test_a_megabyte_of_capabilities_is_refused_and_no_session_is_kept(shared_gateway):
    gw = shared_gateway
    before = gw.readyz()["sessions"]
    big = {"experimental": {"padding": "x" * (1024 * 1024)}}
    resp = requests.post(gw.mcp_url(), json=hello(big), headers=ACCEPT, timeout=10)
    assert resp.status_code == 413, resp.text
    assert "Mcp-Session-Id" not in resp.headers
    error = resp.json()["error"]
    assert error["code"] == -32602 and "max_initialize_bytes" in error["message"]
    assert gw.readyz()["sessions"] == before
    # an ordinary initialize still works
    assert open_session(gw.mcp_url()).status_code == 200

    stream = SseStream(gw.sse_url())
    try:
        endpoint = stream.next()[1]
        accepted = requests.post(gw.base + endpoint, json=hello(big), timeout=10)
        assert accepted.status_code == 202
        reply = json.loads(stream.next()[1])
        assert reply["id"] == 1 and reply["error"]["code"] == -32602
    finally:
        stream.close()


def test_initialize_capabilities_must_be_an_object(shared_gateway):
    resp = requests.post(shared_gateway.mcp_url(), json=hello(capabilities=[1, 2]), headers=ACCEPT, timeout=5)
    assert resp.status_code == 200 and resp.json()["error"]["code"] == -32602
    assert "Mcp-Session-Id" not in resp.headers


def _limits_hold(store):
    limits = SessionLimits(total=3, per_prefix=2, per_owner=1)
    store.create(Session(id="a", prefix="/p", transport="sse", owner="key:1"), limits)
    with pytest.raises(SessionsFull) as full:
        store.create(Session(id="b", prefix="/p", transport="sse", owner="key:1"), limits)
    assert full.value.status == 429 and full.value.setting == "max_sessions_per_principal"
    store.create(Session(id="c", prefix="/p", transport="sse", owner=""), limits)
    with pytest.raises(SessionsFull) as full:
        store.create(Session(id="d", prefix="/p", transport="sse", owner=""), limits)
    assert full.value.status == 503 and full.value.setting == "max_sessions_per_router"
    store.create(Session(id="e", prefix="/q", transport="sse", owner=""), limits)
    with pytest.raises(SessionsFull) as full:
        store.create(Session(id="f", prefix="/r", transport="sse", owner=""), limits)
    assert full.value.setting == "max_sessions"
    assert store.get("a") and store.get("c") and store.get("e")  # nothing evicted
    store.save(store.get("a"))  # an update is not a new session
    assert (store.count(), store.count(prefix="/p"), store.count(owner="key:1")) == (3, 2, 1)
    store.delete("a")
    assert (store.count(), store.count(prefix="/p"), store.count(owner="key:1")) == (2, 1, 0)
    store.create(Session(id="g", prefix="/p", transport="sse", owner="key:1"), limits)


def test_memory_store_counts_and_limits():
    _limits_hold(MemorySessionStore(ttl=60))


def test_redis_store_counts_and_limits(redis_url):
    from gateway_server.sessions_redis import RedisSessionStore

    prefix = key_prefix()
    store = RedisSessionStore(redis_url, ttl=60, prefix=prefix)
    try:
        _limits_hold(store)
    finally:
        store.close()
        drop_keys(prefix)
