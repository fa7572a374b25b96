"""McpClient in both eras: ``auto`` (probe ``server/discover``, fall back to ``initialize``), ``2026-07-28`` and ``legacy``.

Against the conformance fixture (dual-era) over Streamable HTTP and stdio, and against a small
legacy-only HTTP server defined here (it answers ``server/discover`` the way pre-2026 servers do).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from mcpgw_sdk.client import McpClient, McpConnectionError, McpError
from mcpgw_sdk.mcp_transports import encode_header_value, modern_headers
from tests.fixtures_gateway import FIXTURE
from tests.helpers import free_port, python, wait_for

MODERN = "2026-07-28"


# --- a legacy-only server --------------------------------------------------------------------------------


class _LegacyOnly(BaseHTTPRequestHandler):
    """Streamable HTTP of 2025-11-25 only: ``server/discover`` is an unknown method (or a bare 4xx)."""

    discover_status = 400  # 400 with a JSON-RPC error; ``bare`` answers 404 with a text body
    bare = False
    seen: list[dict] = []

    def log_message(self, *args) -> None:
        pass

    def _reply(self, status: int, body: dict | None, headers: dict | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        message = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"method": message.get("method"), "session": self.headers.get("Mcp-Session-Id"),
                                "version": self.headers.get("MCP-Protocol-Version")})
        method, msg_id = message.get("method"), message.get("id")
        if msg_id is None:
            return self._reply(202, None)
        if method == "initialize":
            return self._reply(200, {"jsonrpc": "2.0", "id": msg_id, "result": {
                "protocolVersion": "2025-11-25", "capabilities": {"tools": {}},
                "serverInfo": {"name": "legacy-only", "version": "1"}}}, {"Mcp-Session-Id": "legacy-session"})
        if self.headers.get("Mcp-Session-Id") != "legacy-session":
            if type(self).bare:
                data = b"Not Found"
                self.send_response(404)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return None
            return self._reply(400, {"jsonrpc": "2.0", "id": msg_id,
                                     "error": {"code": -32600, "message": "Bad Request: Missing session ID"}})
        if method == "tools/list":
            return self._reply(200, {"jsonrpc": "2.0", "id": msg_id, "result": {"tools": [
                {"name": "hello", "inputSchema": {"type": "object"}}]}})
        return self._reply(200, {"jsonrpc": "2.0", "id": msg_id, "error": {"code": -32601, "message": method}})

    def do_DELETE(self) -> None:  # noqa: N802
        self._reply(200, None)


@pytest.fixture
def legacy_only():
    """A legacy-only Streamable HTTP server on a free port; yields its handler class (to read ``seen``)."""
    handler = type("LegacyOnly", (_LegacyOnly,), {"seen": [], "bare": False})
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/mcp"
    yield handler
    server.shutdown()
    server.server_close()


# --- header encoding ---------------------------------------------------------------------------------------


def test_header_values_follow_the_base64_rule():
    assert encode_header_value("get_user") == "get_user"
    assert encode_header_value("Hello, 世界") == "=?base64?SGVsbG8sIOS4lueVjA==?="
    assert encode_header_value(" padded ") == "=?base64?IHBhZGRlZCA=?="
    assert encode_header_value("=?base64?literal?=") == "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
    assert encode_header_value("tab\there") == "=?base64?dGFiCWhlcmU=?="
    envelope = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "café", "_meta": envelope}}
    assert modern_headers(call) == {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call",
                                    "Mcp-Name": "=?base64?Y2Fmw6k=?="}
    read = {"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "test://x", "_meta": envelope}}
    assert modern_headers(read)["Mcp-Name"] == "test://x"
    listing = {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {"_meta": envelope}}
    assert "Mcp-Name" not in modern_headers(listing)
    assert modern_headers({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}) == {}  # legacy: none


def test_mode_is_checked():
    with pytest.raises(ValueError, match="mode"):
        McpClient("http://127.0.0.1:1/mcp", mode="2099-01-01")
    with pytest.raises(ValueError, match="legacy revisions only"):
        McpClient("http://127.0.0.1:1/sse", transport="sse", mode=MODERN)
    assert McpClient("http://127.0.0.1:1/sse", transport="sse").mode == "legacy"


# --- the dual-era fixture over Streamable HTTP -----------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", MODERN])
def test_modern_over_streamable_http(http_url, mode):
    with McpClient(http_url, mode=mode, client_info={"name": "eras-test", "version": "9"}) as client:
        assert client.era == "modern" and client.modern and client.protocol_version == MODERN
        assert client.session_id is None  # stateless: no session
        assert MODERN in client.supported_versions
        assert client.server_info["name"] == "mcpgw-conformance-fixture"
        assert "tools" in client.server_capabilities
        assert "echo" in {t["name"] for t in client.list_tools()}
        result = client.call_tool("echo", {"text": "hé"})
        assert result["content"][0]["text"] == "hé" and result["resultType"] == "complete"

        # What the server saw: the version, method and name headers of this very request.
        def header(name: str) -> str:
            return client.call_tool("header_value", {"name": name})["content"][0]["text"]

        assert header("mcp-protocol-version") == MODERN
        assert header("mcp-method") == "tools/call"
        assert header("mcp-name") == "header_value"
        assert header("mcp-session-id") in ("", "None", "none")
        # A non-ASCII name travels base64-encoded and matches the body: an unknown tool, not a header mismatch.
        try:
            unknown = client.call_tool("Hello, 世界")
        except McpError as exc:
            assert exc.code != -32020, exc
        else:
            assert unknown.get("isError") and "Hello, 世界" in unknown["content"][0]["text"], unknown
        assert client.read_resource("test://static-text")["contents"][0]["text"].startswith("This is the content")
        assert client.get_prompt("test_simple_prompt")["messages"]
        progress: list[dict] = []
        client.call_tool("test_tool_with_progress", progress_token="p-1", on_message=progress.append)
        assert [m["params"]["progress"] for m in progress] == [0, 50, 100]


def test_modern_capabilities_are_declared_per_request(http_url):
    with McpClient(http_url, mode=MODERN) as client:
        with pytest.raises(McpError) as missing:
            client.call_tool("test_missing_capability")
        assert missing.value.code == -32021 and missing.value.data == {"requiredCapabilities": {"sampling": {}}}
        ok = client.call_tool("test_missing_capability", client_capabilities={"sampling": {}})
        assert ok["content"][0]["text"] == "The client declared the sampling capability."
    with McpClient(http_url, mode=MODERN, client_capabilities={"sampling": {}}) as client:
        assert not client.call_tool("test_missing_capability").get("isError")
        # No server→client requests in 2026-07-28: the server asks in the result instead (returned as is).
        asked = client.call_tool("test_streaming_elicitation", client_capabilities={"elicitation": {}})
        assert asked["resultType"] == "input_required" and "user_name" in asked["inputRequests"]


def test_legacy_only_methods_raise_in_modern_mode(http_url):
    with McpClient(http_url, mode=MODERN) as client:
        for call in (client.ping, lambda: client.subscribe("test://watched-resource"),
                     lambda: client.unsubscribe("test://watched-resource"), lambda: client.set_logging_level("info")):
            with pytest.raises(McpError, match="does not exist in MCP 2026-07-28") as exc:
                call()
            assert exc.value.code == -32601
        assert client.call_tool("echo", {"text": "still fine"})["content"][0]["text"] == "still fine"


def test_modern_listen_and_cancel(http_url):
    with McpClient(http_url, mode=MODERN, timeout=15) as client:
        got: list[dict] = []
        ended: list = []
        listen_id = client.listen({"toolsListChanged": True}, got.append, on_end=ended.append)
        wait_for(lambda: got, what="the acknowledgement")
        assert got[0]["method"] == "notifications/subscriptions/acknowledged"
        client.call_tool("test_trigger_tool_change")
        wait_for(lambda: any(m["method"] == "notifications/tools/list_changed" for m in got), what="list_changed")
        assert all(m["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == listen_id for m in got)
        client.cancel(listen_id)
        wait_for(lambda: ended, what="the stream's end")
        # Cancelling a call closes its stream: the caller is released at once.
        request_id = client.next_id()
        box: dict = {}
        thread = threading.Thread(target=lambda: box.update(error=_error_of(
            lambda: client.call_tool("slow", {"seconds": 10}, request_id=request_id))))
        started = time.monotonic()
        thread.start()
        time.sleep(0.5)
        client.cancel(request_id, "gave up")
        thread.join(5)
        assert box["error"].code == -32800 and time.monotonic() - started < 5
        client.call_tool("test_trigger_tool_change")  # put the fixture back


def _error_of(call) -> McpError | None:
    try:
        call()
    except McpError as exc:
        return exc
    return None


def test_legacy_mode_keeps_the_handshake(http_url):
    with McpClient(http_url, mode="legacy") as client:
        assert client.era == "legacy" and not client.modern
        assert client.protocol_version == "2025-11-25" and client.session_id
        assert client.ping() == {}
        assert client.call_tool("echo", {"text": "legacy"})["content"][0]["text"] == "legacy"
        assert client.call_tool("header_value", {"name": "mcp-method"})["content"][0]["text"] in ("", "None", "none")


# --- stdio -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "era"), [("auto", "modern"), (MODERN, "modern"), ("legacy", "legacy")])
def test_stdio_speaks_both_eras(mode, era):
    with McpClient(python(), transport="stdio", args=[FIXTURE], mode=mode, timeout=20) as client:
        assert client.era == era
        assert client.call_tool("echo", {"text": "stdio"})["content"][0]["text"] == "stdio"
        if era == "modern":
            with pytest.raises(McpError) as missing:
                client.call_tool("test_missing_capability")
            assert missing.value.code == -32021
        else:
            assert client.ping() == {}


# --- auto against a legacy-only server ---------------------------------------------------------------------


@pytest.mark.parametrize("bare", [False, True], ids=["json-rpc-error", "bare-404"])
def test_auto_falls_back_to_initialize(legacy_only, bare):
    legacy_only.bare = bare
    with McpClient(legacy_only.url) as client:
        assert client.era == "legacy" and client.protocol_version == "2025-11-25"
        assert client.session_id == "legacy-session"
        assert [t["name"] for t in client.list_tools()] == ["hello"]
    first = legacy_only.seen[0]
    assert first == {"method": "server/discover", "session": None, "version": MODERN}
    assert [s["method"] for s in legacy_only.seen[1:3]] == ["initialize", "notifications/initialized"]


def test_modern_mode_does_not_fall_back(legacy_only):
    with pytest.raises(McpError) as refused:
        McpClient(legacy_only.url, mode=MODERN).connect()
    assert refused.value.code == -32600
    assert [s["method"] for s in legacy_only.seen] == ["server/discover"]


def test_auto_fails_on_network_errors():
    with pytest.raises(McpConnectionError):
        McpClient(f"http://127.0.0.1:{free_port()}/mcp", timeout=5).connect()
