"""The Node MCP clients in the 2026-07-28 era through a real dual-era gateway.

* The MCP Inspector CLI (``@modelcontextprotocol/inspector``, ``--protocol-era auto|modern``) lists and
  calls tools on a REST prefix and on an upstream prefix.
* The TypeScript SDK v2 client (``@modelcontextprotocol/client``, ``versionNegotiation: {mode: 'auto'}``),
  driven by ``tests/js/ts_client.mjs``, settles on 2026-07-28, lists tools and calls a REST and an
  upstream tool; in legacy mode, and in auto mode over HTTP+SSE, it gets the legacy era as before.

The modern runs go through a small recording proxy so the tests also see the wire: a ``server/discover``
probe, every request with ``MCP-Protocol-Version: 2026-07-28`` and the ``_meta`` envelope, no
``initialize`` and no ``Mcp-Session-Id``.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.fixtures_gateway import ROOT, demo_document, node_tool, path_with_node, run_backend, run_gateway, seed
from tests.helpers import Procs
from tests.test_conformance import UPSTREAM_PREFIX, conformance_document

pytestmark = pytest.mark.node

MODERN = "2026-07-28"
LEGACY = "2025-11-25"
DEMO = "/gateway/demo"
SCRIPT = ROOT / "tests" / "js" / "ts_client.mjs"
ADA = {"email": "ada@example.com"}
NOBODY = {"email": "nobody@example.com"}
SERVER_INFO = "io.modelcontextprotocol/serverInfo"
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"
HOP_BY_HOP = {"host", "connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class WireRecorder:
    """A recording reverse proxy in front of the gateway: every request (method, path, the MCP headers,
    the JSON-RPC method and ``_meta``) and the status and session header of each answer."""

    def __init__(self, target: str):
        self.target = target
        self.records: list[dict] = []
        self.lock = threading.Lock()
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the answer ends when the connection closes: streams pass as they come

            def log_message(self, *args):
                pass

            def _forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                record = {"verb": self.command, "path": self.path,
                          "headers": {k.lower(): v for k, v in self.headers.items()
                                      if k.lower().startswith("mcp-")}}
                try:
                    message = json.loads(body) if body else None
                except ValueError:
                    message = None
                if isinstance(message, dict):
                    record["method"] = message.get("method")
                    record["meta"] = (message.get("params") or {}).get("_meta")
                with recorder.lock:
                    recorder.records.append(record)
                try:
                    upstream = requests.request(self.command, recorder.target + self.path, headers=headers,
                                                data=body or None, stream=True, timeout=(5, 60),
                                                allow_redirects=False)
                except requests.RequestException as exc:
                    self.send_error(502, str(exc))
                    return
                record["status"] = upstream.status_code
                record["session"] = upstream.headers.get("Mcp-Session-Id")
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                self.end_headers()
                try:
                    for chunk in upstream.raw.stream(4096, decode_content=False):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (OSError, requests.RequestException):
                    pass
                finally:
                    upstream.close()

            do_GET = do_POST = do_DELETE = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self) -> list[dict]:
        """The records since the last call."""
        with self.lock:
            taken, self.records = self.records, []
        return taken

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """A gateway serving the demo REST tools at ``/gateway/demo`` and the fixture upstream at
    ``/gateway/conformance``."""
    with Procs(tmp_path_factory.mktemp("js-clients-modern")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, demo_document(run_backend(procs)), conformance_document())
        yield run_gateway(procs, url, revision=revision)


@pytest.fixture
def wire(gw):
    """A :class:`WireRecorder` in front of ``gw``."""
    recorder = WireRecorder(gw.base)
    yield recorder
    recorder.close()


def assert_modern_wire(records: list[dict]) -> None:
    """The client spoke 2026-07-28 only: probed with ``server/discover``, sent the version header and the
    ``_meta`` envelope on every request, never ``initialize``, and was never given a session."""
    assert records, "the client sent nothing through the recorder"
    methods = [r.get("method") for r in records]
    assert methods[0] == "server/discover", records
    assert "initialize" not in methods, records
    for record in records:
        assert record["verb"] == "POST", record
        assert record["headers"].get("mcp-protocol-version") == MODERN, record
        assert "mcp-session-id" not in record["headers"], record
        assert record.get("session") is None, record
        # the Inspector opens subscriptions/listen and carries on whether the gateway serves it (200) or not (404)
        allowed = (200, 404) if record.get("method") == "subscriptions/listen" else (200, 202)
        assert record["status"] in allowed, record
        if record.get("method") and record["method"] != "server/discover":
            assert record["headers"].get("mcp-method") == record["method"], record
            assert (record.get("meta") or {}).get(PROTOCOL_VERSION_META) == MODERN, record


# --- the MCP Inspector CLI -------------------------------------------------------------------------------


def inspector(*args, timeout=60):
    exe = node_tool("mcp-inspector")
    env = {**os.environ, "PATH": path_with_node()}
    return subprocess.run([exe, "--cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


def inspector_json(url: str, era: str, *args, transport: str = "http", expect_rc: int = 0) -> dict:
    done = inspector(url, "--transport", transport, "--protocol-era", era, *args, "--format", "json")
    assert done.returncode == expect_rc, f"rc={done.returncode}\n{done.stderr}\n{done.stdout}"
    return json.loads(done.stdout)


@pytest.mark.parametrize("era", ["auto", "modern"])
def test_inspector_modern_era_lists_and_calls_rest_tools(gw, wire, era):
    url = f"{wire.base}{DEMO}/mcp"
    listed = inspector_json(url, era, "--method", "tools/list")
    names = [t["name"] for t in listed["result"]["tools"]]
    assert "get_user" in names and "list_users" in names
    assert_modern_wire(wire.take())

    called = inspector_json(url, era, "--method", "tools/call", "--tool-name", "get_user",
                            "--tool-args-json", json.dumps(ADA))["result"]
    assert called["isError"] is False
    assert called["structuredContent"]["name"] == "Ada Lovelace"
    assert called["_meta"][SERVER_INFO]["name"] == "mcpgw"  # the modern answer's serverInfo
    records = wire.take()
    assert_modern_wire(records)
    call = next(r for r in records if r.get("method") == "tools/call")
    assert call["headers"]["mcp-name"] == "get_user"

    # a REST error is a tool error (isError), which the Inspector reports with its exit code 5
    failed = inspector(url, "--transport", "http", "--protocol-era", era, "--method", "tools/call",
                       "--tool-name", "get_user", "--tool-args-json", json.dumps(NOBODY), "--format", "json")
    assert failed.returncode == 5, failed.stderr + failed.stdout
    assert json.loads(failed.stdout)["result"]["isError"] is True
    assert_modern_wire(wire.take())


def test_inspector_auto_era_calls_upstream_tools(gw, wire):
    url = f"{wire.base}{UPSTREAM_PREFIX}/mcp"
    listed = inspector_json(url, "auto", "--method", "tools/list")
    assert "test_simple_text" in [t["name"] for t in listed["result"]["tools"]]
    called = inspector_json(url, "auto", "--method", "tools/call", "--tool-name", "test_simple_text")["result"]
    assert called["content"][0]["text"] == "This is a simple text response for testing."
    assert_modern_wire(wire.take())


def test_inspector_auto_era_falls_back_to_legacy_on_sse(gw):
    """HTTP+SSE stays legacy: the auto probe is refused there and the Inspector falls back to initialize."""
    called = inspector_json(gw.sse_url(), "auto", "--method", "tools/call", "--tool-name", "get_user",
                            "--tool-args-json", json.dumps(ADA), transport="sse")["result"]
    assert called["structuredContent"]["name"] == "Ada Lovelace"
    assert SERVER_INFO not in (called.get("_meta") or {})  # a legacy answer


# --- the TypeScript SDK v2 client -------------------------------------------------------------------------


def ts_client(url: str, *args: str, timeout=60) -> dict:
    """Run ``tests/js/ts_client.mjs`` with the .tools Node; its one JSON object."""
    node_tool("node")
    client_pkg = ROOT / ".tools" / "node_modules" / "@modelcontextprotocol" / "client" / "package.json"
    if not client_pkg.exists():
        if os.environ.get("CI"):
            pytest.fail("@modelcontextprotocol/client is not in .tools: run make node-tools")
        pytest.skip("@modelcontextprotocol/client is not in .tools")
    env = {**os.environ, "PATH": path_with_node()}
    done = subprocess.run(["node", str(SCRIPT), url, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=ROOT)
    assert done.returncode == 0, f"rc={done.returncode}\n{done.stderr}\n{done.stdout}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_ts_client_auto_settles_on_2026_07_28_and_calls_rest_tools(gw, wire):
    out = ts_client(f"{wire.base}{DEMO}/mcp", "--negotiation", "auto", "--expect-version", MODERN,
                    "--call", "get_user", json.dumps(ADA), "--call", "get_user", json.dumps(NOBODY))
    assert out["protocolVersion"] == MODERN and out["era"] == "modern"
    assert out["sessionId"] is None
    assert out["supportedVersions"][0] == MODERN and LEGACY in out["supportedVersions"]
    assert out["serverInfo"]["name"] == "mcpgw"
    assert "get_user" in out["tools"] and "list_users" in out["tools"]
    found, missing = out["calls"]
    assert found["isError"] is False and found["structuredContent"]["name"] == "Ada Lovelace"
    assert found["meta"][SERVER_INFO]["name"] == "mcpgw"
    assert missing["isError"] is True and "404" in missing["text"]
    records = wire.take()
    assert_modern_wire(records)
    assert [r["method"] for r in records] == ["server/discover", "tools/list", "tools/call", "tools/call"]


def test_ts_client_auto_calls_upstream_tools(gw, wire):
    out = ts_client(f"{wire.base}{UPSTREAM_PREFIX}/mcp", "--negotiation", "auto", "--expect-version", MODERN,
                    "--call", "test_simple_text", "{}")
    assert out["protocolVersion"] == MODERN and out["era"] == "modern"
    assert "test_simple_text" in out["tools"]
    call = out["calls"][0]
    assert call["isError"] is False and call["text"] == "This is a simple text response for testing."
    assert_modern_wire(wire.take())


def test_ts_client_pinned_2026_07_28(gw):
    out = ts_client(gw.mcp_url(), "--negotiation", MODERN, "--call", "list_users", "{}")
    assert out["protocolVersion"] == MODERN and out["era"] == "modern" and out["sessionId"] is None
    assert out["calls"][0]["isError"] is False


@pytest.mark.parametrize("negotiation, transport, prefix, tool", [
    ("legacy", "http", DEMO, "get_user"),
    ("legacy", "http", UPSTREAM_PREFIX, "test_simple_text"),
    ("auto", "sse", DEMO, "get_user"),
])
def test_ts_client_legacy_paths_behave_as_before(gw, negotiation, transport, prefix, tool):
    url = gw.mcp_url(prefix) if transport == "http" else gw.sse_url(prefix)
    args = json.dumps(ADA) if tool == "get_user" else "{}"
    out = ts_client(url, "--negotiation", negotiation, "--transport", transport, "--call", tool, args)
    assert out["protocolVersion"] == LEGACY and out["era"] == "legacy"
    assert out["supportedVersions"] is None
    if transport == "http":
        assert out["sessionId"]  # a legacy Streamable HTTP session
    assert tool in out["tools"]
    call = out["calls"][0]
    assert call["isError"] is False and SERVER_INFO not in (call["meta"] or {})
