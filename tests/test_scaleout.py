"""Scale-out end to end: two gateway replicas sharing Redis sessions and one database.

Replica A is ``python -m gateway_server`` (gevent pywsgi), replica B is
``gunicorn -k gevent -w 2``. A session opened on one is served by the other:
that is what lets a load balancer without sticky sessions spread one client's
requests over every worker and replica.
"""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest
import requests

from gateway_server.app import open_sessions
from gateway_server.sessions_redis import RedisSessionStore
from tests.fixtures_gateway import DEMO_PREFIX, SseStream, demo_document, gunicorn_path, run_backend, run_gateway, seed
from tests.helpers import REDIS_URL, Procs, drop_keys, key_prefix, python, redis_available, wait_for


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """``(a, b, key_prefix)``: two replicas on one SQLite file and one Redis key prefix (shared by the module)."""
    redis_url = redis_available()
    gunicorn = gunicorn_path()
    prefix = key_prefix()
    env = {"MCPGW_REDIS_URL": f"{redis_url}?key_prefix={prefix}", "MCPGW_SSE_HEARTBEAT": "1"}
    commands = {"a": [python(), "-m", "gateway_server", "--db", "{db}", "--port", "{port}"],
                "b": [gunicorn, "-k", "gevent", "-w", "2", "--graceful-timeout", "2", "-b", "127.0.0.1:{port}",
                      "gateway_server.wsgi:app"]}
    try:
        with Procs(tmp_path_factory.mktemp("scaleout")) as procs:
            url = f"sqlite:///{procs.log_dir / 'gw.db'}"
            revision = seed(url, demo_document(run_backend(procs)))
            a, b = (run_gateway(procs, url, env=env, command=command, revision=revision, name=f"replica {name}")
                    for name, command in commands.items())
            yield a, b, prefix
    finally:
        drop_keys(prefix)


def rpc(method, params=None, id=1):
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


INIT = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "scaleout", "version": "1"}}


def _session_keys(key_prefix: str) -> set[str]:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        return {k.decode().rsplit(":", 1)[1] for k in client.scan_iter(match=f"{key_prefix}session:*")}
    finally:
        client.close()


def test_the_redis_url_setting_selects_the_redis_store():
    store = open_sessions(redis_url=f"{REDIS_URL}?key_prefix=mcpgw-test-select:", ttl=60)
    try:
        assert isinstance(store, RedisSessionStore) and store.prefix == "mcpgw-test-select:"
    finally:
        store.close()
    assert not isinstance(open_sessions(redis_url="", ttl=60), RedisSessionStore)


def test_sse_stream_on_a_receives_answers_to_posts_on_b(replicas):
    a, b, key_prefix = replicas
    stream = SseStream(a.sse_url())
    try:
        event, endpoint = stream.next()
        assert event == "endpoint" and endpoint.startswith(f"{DEMO_PREFIX}/message?sessionId=")
        session_id = endpoint.rsplit("=", 1)[1]
        assert session_id in _session_keys(key_prefix), "the SSE session is not in Redis"
        # each POST on a fresh connection to B (two gunicorn workers), every answer on A's stream
        init = requests.post(b.base + endpoint, json=rpc("initialize", {**INIT, "protocolVersion": "2024-11-05"}),
                             timeout=5)
        assert init.status_code == 202
        event, data = stream.next()
        assert event == "message" and json.loads(data)["result"]["protocolVersion"] == "2024-11-05"
        assert requests.post(b.base + endpoint, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                             timeout=5).status_code == 202
        calls = [(b, "ada@example.com", "Ada Lovelace"), (b, "alan@example.com", "Alan Turing"),
                 (b, "ada@example.com", "Ada Lovelace"), (a, "alan@example.com", "Alan Turing")]
        for i, (target, email, name) in enumerate(calls):  # mostly B; A too: both replicas feed one stream
            resp = requests.post(target.base + endpoint,
                                 json=rpc("tools/call", {"name": "get_user", "arguments": {"email": email}}, id=10 + i),
                                 timeout=5)
            assert resp.status_code == 202
            reply = json.loads(stream.next()[1])
            assert reply["id"] == 10 + i and name in reply["result"]["content"][0]["text"]
    finally:
        stream.close()
    # the stream ended on A: A removes the session, and B no longer knows it either
    wait_for(lambda: requests.post(b.base + endpoint, json=rpc("ping"), timeout=5).status_code == 404,
             timeout=15, what="the session to end on B after its stream closed on A")


def test_streamable_session_moves_between_replicas(replicas):
    a, b, key_prefix = replicas
    init = requests.post(a.mcp_url(), json=rpc("initialize", INIT),
                         headers={"Accept": "application/json, text/event-stream"}, timeout=5)
    assert init.status_code == 200
    sid = init.headers["Mcp-Session-Id"]
    assert sid in _session_keys(key_prefix)
    headers = {"Mcp-Session-Id": sid, "Accept": "application/json, text/event-stream",
               "MCP-Protocol-Version": "2025-06-18"}
    assert requests.post(b.mcp_url(), json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers=headers, timeout=5).status_code == 202
    for i in range(4):  # fresh connections: B's two workers share the session too
        called = requests.post(b.mcp_url(), json=rpc("tools/call", {"name": "get_user",
                                                                    "arguments": {"email": "ada@example.com"}}, id=2 + i),
                               headers=headers, timeout=5)
        assert called.status_code == 200, called.text
        assert "Ada Lovelace" in called.json()["result"]["content"][0]["text"]
    listed = requests.post(a.mcp_url(), json=rpc("tools/list", {}, id=9), headers=headers, timeout=5)
    assert "get_user" in {t["name"] for t in listed.json()["result"]["tools"]}
    assert requests.delete(b.mcp_url(), headers=headers, timeout=5).status_code == 200
    gone = requests.post(a.mcp_url(), json=rpc("tools/list", {}, id=10), headers=headers, timeout=5)
    assert gone.status_code == 404
    assert sid not in _session_keys(key_prefix)


class _Balancer:
    """An httpx2 transport that spreads requests over replicas, as a load balancer without stickiness would."""

    def __init__(self, ports, *, by_method=None):
        import httpx2

        self._inner = httpx2.AsyncHTTPTransport()
        self._cycle = itertools.cycle(ports)
        self._by_method = by_method or {}
        self.used: list[tuple[str, int]] = []

    async def handle_async_request(self, request):
        port = self._by_method.get(request.method) or next(self._cycle)
        request.url = request.url.copy_with(port=port)
        self.used.append((request.method, port))
        return await self._inner.handle_async_request(request)

    async def aclose(self):
        await self._inner.aclose()


def _client(transport):
    import httpx2

    class Transport(httpx2.AsyncBaseTransport):
        async def handle_async_request(self, request):
            return await transport.handle_async_request(request)

        async def aclose(self):
            await transport.aclose()

    def factory(headers=None, timeout=None, auth=None):
        return httpx2.AsyncClient(headers=headers, timeout=timeout or 30, auth=auth, transport=Transport())

    return factory


def test_official_client_through_a_balancer(replicas):
    from mcp import Client
    from mcp.client.sse import sse_client
    from mcp.client.streamable_http import streamable_http_client

    a, b, _ = replicas
    round_robin = _Balancer([a.port, b.port])
    split = _Balancer([b.port], by_method={"GET": a.port, "POST": b.port})  # stream on A, messages to B

    async def exercise(client):
        async with client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert "get_user" in names
            for email, name in (("ada@example.com", "Ada Lovelace"), ("alan@example.com", "Alan Turing")):
                result = await client.call_tool("get_user", {"email": email})
                assert not result.is_error and name in result.content[0].text

    async def main():
        await exercise(Client(streamable_http_client(a.mcp_url(), http_client=_client(round_robin)())))
        await exercise(Client(sse_client(a.sse_url(), httpx_client_factory=_client(split))))

    asyncio.run(main())
    assert {port for _, port in round_robin.used} == {a.port, b.port}
    assert ("GET", a.port) in split.used and ("POST", b.port) in split.used
    assert not [used for used in split.used if used[0] == "POST" and used[1] != b.port]
