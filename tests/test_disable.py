"""Disabling a router (``routers[].disabled``): off the gateway within one reload, sessions ended, prefix kept.

The end-to-end test drives a real gateway subprocess with the SDK and the official ``mcp`` client; the
snapshot test checks what is built (and what is not) without any process.
"""

from __future__ import annotations

import asyncio
import json

import pytest
import requests
from mcp import Client
from mcp.shared.exceptions import MCPError

from mcpgw_sdk.errors import ConfigError, ConflictError
from mcpgw_sdk.records import ConfigSet, Document
from mcpgw_sdk.workspace import Workspace
from tests.fixtures_gateway import DEMO_PREFIX, SseStream, demo_document
from tests.helpers import wait_for

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}


def _official_client_tools(url: str) -> list[str]:
    async def main():
        async with Client(url) as client:
            tools = [t.name for t in (await client.list_tools()).tools]
            result = await client.call_tool("get_user", {"email": "ada@example.com"})
            assert not result.is_error and "Ada" in result.content[0].text
            return tools

    return asyncio.run(main())


def _official_client_error(url: str) -> BaseException:
    async def main():
        async with Client(url) as client:
            await client.list_tools()

    with pytest.raises(BaseException) as caught:  # noqa: PT011 - the client wraps transport errors variously
        asyncio.run(main())
    return caught.value


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group wraps (the client raises from task groups), or the exception."""
    inner = getattr(exc, "exceptions", None)
    return [leaf for e in inner for leaf in _leaves(e)] if inner else [exc]


def test_disable_stops_serving_ends_sessions_and_enable_serves_again(seeded_store, start_gateway):
    store, url, backend = seeded_store
    gw = start_gateway(url, reload_interval=0.3)
    gw.wait_revision(store.revision())
    assert "get_user" in _official_client_tools(gw.mcp_url())

    sse = SseStream(gw.sse_url())
    event, endpoint = sse.next()
    assert event == "endpoint"
    init = requests.post(gw.mcp_url(), json=INIT, headers=ACCEPT, timeout=5)
    sid = init.headers["Mcp-Session-Id"]
    try:
        ws = Workspace(store, author="ops")
        doc = ws.disable("default", "demo-users", DEMO_PREFIX)
        assert doc.content["routers"][0]["disabled"] is True and doc.version == 2
        ready = gw.wait_revision(store.revision())
        assert ready["disabled_routes"] == [DEMO_PREFIX] and DEMO_PREFIX not in ready["routes"]

        # The open SSE stream ends (the reader thread sees the end of the body), without a client-side close.
        wait_for(lambda: not sse.thread.is_alive(), timeout=10, what="the SSE stream to end")
        for resp in (requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                                   headers={**ACCEPT, "Mcp-Session-Id": sid}, timeout=5),
                     requests.post(gw.base + endpoint, json={"jsonrpc": "2.0", "id": 2, "method": "ping"}, timeout=5),
                     requests.post(gw.mcp_url(), json=INIT, headers=ACCEPT, timeout=5)):
            assert resp.status_code == 404, resp.text
            message = resp.json()["error"]["message"]
            assert "disabled" in message and DEMO_PREFIX in message and "default/demo-users" in message
        # The official client gets the gateway's JSON-RPC error (from the 404), saying why.
        errors = _leaves(_official_client_error(gw.mcp_url()))
        assert any(isinstance(e, MCPError) and "is disabled" in str(e) for e in errors), errors

        # Disabled, the prefix is still reserved: no other document may take it.
        with pytest.raises((ConfigError, ConflictError), match=DEMO_PREFIX):
            store.save_document(demo_document(backend, name="squatter"))

        ws.enable("default", "demo-users", DEMO_PREFIX)
        ready = gw.wait_revision(store.revision())
        assert ready["disabled_routes"] == [] and DEMO_PREFIX in ready["routes"]
        assert "get_user" in _official_client_tools(gw.mcp_url())
        # The session ended while disabled stays ended.
        assert requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
                             headers={**ACCEPT, "Mcp-Session-Id": sid}, timeout=5).status_code == 404

        # Toggles are ordinary versions: rolling back to the disabled one disables it again.
        assert [v.version for v in store.list_versions("default", "demo-users")][:3] == [3, 2, 1]
        ws.rollback("default", "demo-users", 2)
        assert gw.wait_revision(store.revision())["disabled_routes"] == [DEMO_PREFIX]
    finally:
        sse.close()


class _Backend:
    """A backend that records being built and closed (no IO)."""

    def __init__(self, name, server, document, tools=None):
        self.name, self.tools, self.closed = name, [{"name": t["name"], "inputSchema": {"type": "object"}}
                                                    for t in tools or []], False

    def list_tools(self):
        return self.tools

    def close(self):
        self.closed = True


def _doc(name, routers):
    return {"name": name, "tenant": "default", "routers": routers,
            "servers": [{"name": "a", "allowedTools": ["ta"]}, {"name": "b", "allowedTools": ["tb"]}],
            "tools": [{"name": "ta", "endpoint": "http://127.0.0.1:1/a"}, {"name": "tb", "endpoint": "http://127.0.0.1:1/b"}]}


def _config(revision, *docs):
    return ConfigSet(revision, tuple(Document("default", d["name"], d, 1) for d in docs), (), ())


def test_snapshot_skips_disabled_routers_and_retires_their_backends():
    from gateway_server.snapshot import build_snapshot, retired_backends

    def make(kind, **kw):
        return _Backend(**kw)

    on = _doc("d", [{"prefix": "/x/a", "server": "a"}, {"prefix": "/x/b", "server": "b"}])
    first = build_snapshot(_config(1, on), make=make)
    assert sorted(first.routes) == ["/x/a", "/x/b"] and first.disabled == {}
    off = json.loads(json.dumps(on))
    off["routers"][1]["disabled"] = True
    second = build_snapshot(_config(2, off), first, make=make)
    assert sorted(second.routes) == ["/x/a"] and second.disabled == {"/x/b": "default/d"}
    assert second.routes["/x/a"].backends[0] is first.routes["/x/a"].backends[0]
    assert retired_backends(first, second) == [first.routes["/x/b"].backends[0]]
    assert second.errors == {}

    # A document slipping past the store with a prefix another document reserves by disabling it is refused.
    squatter = _doc("e", [{"prefix": "/x/b", "server": "a"}])
    third = build_snapshot(_config(3, off, squatter), second, make=make)
    assert "/x/b" not in third.routes and third.disabled == {"/x/b": "default/d"}
    assert any("already served by default/d" in e for e in third.errors["default/e"])
