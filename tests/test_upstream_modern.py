"""A gateway in front of a modern (2026-07-28) upstream: classified once, called statelessly, no upstream session.

The conformance fixture over Streamable HTTP serves both eras, so the gateway's ``server/discover``
probe classifies it modern. Legacy and modern clients of the gateway both reach it; ``/readyz`` shows
the classification and that no upstream session exists. A legacy client that can answer sampling is
served on a legacy upstream session (modern upstreams cannot send it server→client requests).
"""

from __future__ import annotations

import pytest
import requests

from mcpgw_sdk.client import McpClient, McpError
from tests.fixtures_gateway import GatewayProc, run_gateway, seed, start_fixture
from tests.helpers import Procs, wait_for

PREFIX = "/gateway/modern-up"
MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """A gateway serving the fixture (Streamable HTTP, dual-era) at :data:`PREFIX` without a tool prefix."""
    tmp = tmp_path_factory.mktemp("modern-up")
    proc, url = start_fixture(tmp, "streamable-http")
    try:
        with Procs(tmp) as procs:
            doc = {"name": "modern-up", "tenant": "default", "routers": [{"prefix": PREFIX, "server": "fx"}],
                   "mcpServers": [{"name": "fx", "type": "streamable-http", "url": url, "toolPrefix": "",
                                   "timeout": 15}]}
            db = f"sqlite:///{procs.log_dir / 'gw.db'}"
            gateway = run_gateway(procs, db, revision=seed(db, doc))
            wait_for(lambda: upstream(gateway)["state"] == "ready", timeout=30, what="the upstream ready")
            yield gateway
    finally:
        proc.stop()


def upstream(gw: GatewayProc) -> dict:
    """The ``/readyz`` entry of the fixture upstream."""
    return next(u for u in gw.readyz()["upstreams"] if u["server"] == "fx")


def assert_no_upstream_session(gw: GatewayProc) -> None:
    status = upstream(gw)
    assert status["era"] == "modern", status
    assert status["upstream_session"] is False and status["sessions"] == 0, status


def test_the_upstream_is_classified_modern(gw):
    assert_no_upstream_session(gw)


def test_a_legacy_client_calls_a_modern_upstream(gw):
    with McpClient(gw.mcp_url(PREFIX), mode="legacy", timeout=20) as client:
        assert client.era == "legacy" and client.session_id
        names = {t["name"] for t in client.list_tools()}
        assert {"echo", "test_simple_text"} <= names
        result = client.call_tool("echo", {"text": "from legacy"})
        assert result["content"][0]["text"] == "from legacy" and not result.get("isError")
        # The upstream's hop fields stay on its hop.
        assert "resultType" not in result and "io.modelcontextprotocol/serverInfo" not in (result.get("_meta") or {})
        progress: list[dict] = []
        done = client.call_tool("test_tool_with_progress", progress_token="legacy-p", on_message=progress.append)
        assert not done.get("isError"), done
        assert [m["params"]["progress"] for m in progress] == [0, 50, 100]
        assert {m["params"]["progressToken"] for m in progress} == {"legacy-p"}
        assert client.read_resource("test://static-text")["contents"][0]["text"].startswith("This is the content")
        assert client.get_prompt("test_simple_prompt")["messages"]
    assert_no_upstream_session(gw)


def test_a_modern_client_calls_a_modern_upstream(gw):
    with McpClient(gw.mcp_url(PREFIX), mode=MODERN, timeout=20) as client:
        assert client.era == "modern" and client.session_id is None
        assert "echo" in {t["name"] for t in client.list_tools()}
        result = client.call_tool("echo", {"text": "from modern"})
        assert result["content"][0]["text"] == "from modern" and result["resultType"] == "complete"
        # The gateway's own serverInfo, not the upstream's.
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] != "mcpgw-conformance-fixture"
        # The upstream sees the caller's capabilities: without sampling it answers -32021, relayed as 400.
        with pytest.raises(McpError) as missing:
            client.call_tool("test_missing_capability")
        assert missing.value.code == -32021
        assert missing.value.data == {"requiredCapabilities": {"sampling": {}}}
        ok = client.call_tool("test_missing_capability", client_capabilities={"sampling": {}})
        assert ok["content"][0]["text"] == "The client declared the sampling capability.", ok
    assert_no_upstream_session(gw)


def test_missing_capability_is_a_400_on_the_wire(gw):
    envelope = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    resp = requests.post(gw.mcp_url(PREFIX), timeout=20, json={
        "jsonrpc": "2.0", "id": 401, "method": "tools/call",
        "params": {"name": "test_missing_capability", "arguments": {}, "_meta": envelope}},
        headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
                 "Mcp-Method": "tools/call", "Mcp-Name": "test_missing_capability"})
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["id"] == 401 and body["error"]["code"] == -32021
    assert body["error"]["data"]["requiredCapabilities"]["sampling"] == {}


def test_a_legacy_client_answering_sampling_gets_a_legacy_upstream_session(gw):
    """Last: it opens the shared legacy upstream session that sampling needs."""
    asked: list[str] = []

    def answer(message: dict) -> dict:
        asked.append(message["method"])
        return {"role": "assistant", "model": "m", "content": {"type": "text", "text": "sampled"}}

    with McpClient(gw.mcp_url(PREFIX), mode="legacy", timeout=20, on_request=answer,
                   client_capabilities={"sampling": {}}) as client:
        result = client.call_tool("test_sampling", {"prompt": "hi"})
        assert result["content"][0]["text"] == "LLM response: sampled", result
    assert asked == ["sampling/createMessage"]
    status = upstream(gw)
    assert status["era"] == "modern" and status["upstream_session"] is True and status["sessions"] == 0
