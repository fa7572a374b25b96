"""Credentials in upstream URLs never show: not on /readyz, not in errors sent to MCP clients, not in the log.
/readyz details are for loopback callers (not through a proxy) or holders of the readyz token."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from mcpgw_sdk.redact import redact_text, redact_url
from tests.fixtures_gateway import run_gateway, seed
from tests.helpers import free_port, wait_for

SECRETS = ("s3cret-pw", "abc-t0ken", "k3y-value")


@pytest.mark.parametrize(("url", "expected"), [
    ("https://user:s3cret@host/mcp?token=abc", "https://***@host/mcp?token=***"),
    ("http://127.0.0.1:5/mcp", "http://127.0.0.1:5/mcp"),
    ("http://[::1]:8080/p?a=1&b=&c", "http://[::1]:8080/p?a=***&b=***&c"),
    ("http://h/p?secret", "http://h/p?***"),
    ("http://user@h/#frag=1", "http://***@h/"),
])
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_redact_text_finds_urls_and_query_pairs_anywhere():
    text = ("POST http://u:pw@h:1/mcp?token=t1 failed: HTTPConnectionPool(host='h', port=1): Max retries "
            "exceeded with url: /mcp?token=t1&key=k1 (Caused by ...); see //u:pw@h")
    out = redact_text(text, ["k1"])
    assert "pw" not in out and "t1" not in out and "k1" not in out
    assert out.startswith("POST http://***@h:1/mcp?token=*** failed")


def _upstream_document(port: int) -> dict:
    url = f"http://mcp-user:{SECRETS[0]}@127.0.0.1:{port}/mcp?token={SECRETS[1]}&api_key={SECRETS[2]}"
    return {"name": "leaky", "tenant": "default", "routers": [{"prefix": "/gateway/leaky", "server": "up"}],
            "mcpServers": [{"name": "up", "type": "streamable-http", "url": url, "policy": "onStart", "timeout": 2}]}


def _non_loopback_address() -> str | None:
    """An address of this host that is not loopback (the test's stand-in for a remote caller), if any."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
            address = probe.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def _assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} shows in {where}: {text[:2000]}"


class _FailingMcp(BaseHTTPRequestHandler):
    """A Streamable HTTP MCP server that lists one tool (``echo``) and fails every call with HTTP 500."""

    def log_message(self, *args):
        pass

    def do_POST(self):  # noqa: N802 - the http.server spelling
        message = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        method = message.get("method")
        if "id" not in message:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if method == "tools/call":
            body = b"boom"
            self.send_response(500)
        else:
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]} if method == "tools/list" \
                else {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "failing", "version": "1"}} if method == "initialize" else {}
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Mcp-Session-Id", "s1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_DELETE = do_GET


@pytest.fixture
def failing_mcp():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FailingMcp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_upstream_credentials_never_show(procs, failing_mcp):
    dead_port = free_port()  # nothing listens: this upstream fails to connect and says why
    url = f"sqlite:///{procs.log_dir / 'gw.db'}"
    live = _upstream_document(failing_mcp)
    live.update(name="live", routers=[{"prefix": "/gateway/live", "server": "up"}])
    revision = seed(url, _upstream_document(dead_port), live)
    gw = run_gateway(procs, url, revision=revision, args=("--host", "0.0.0.0"),
                     env={"MCPGW_LOG_LEVEL": "DEBUG", "MCPGW_READYZ_TOKEN": "ops-t0ken",
                          "MCPGW_ALLOW_ANONYMOUS": "true"})
    gateway_proc = procs.items[-1]

    # Loopback callers see the details, redacted.
    def failed_upstream():
        doc = requests.get(f"{gw.base}/readyz", timeout=5).json()
        ups = doc.get("upstreams") or []
        return doc if any(u.get("last_error") for u in ups) else None

    doc = wait_for(failed_upstream, timeout=20, what="the upstream's connect error on /readyz")
    _assert_clean(json.dumps(doc), "/readyz (loopback)")
    assert f"127.0.0.1:{dead_port}" in json.dumps(doc)  # still says which upstream failed

    # An MCP client whose call fails upstream gets an error that names the host, not the credentials.
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    mcp = gw.mcp_url("/gateway/live")
    init = requests.post(mcp, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers=headers, timeout=10)
    assert init.status_code == 200, init.text
    headers["Mcp-Session-Id"] = init.headers["Mcp-Session-Id"]

    def listed():
        answer = requests.post(mcp, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers,
                               timeout=10)
        return "echo" in answer.text

    wait_for(listed, timeout=20, what="the live upstream's tools")
    call = requests.post(mcp, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                    "params": {"name": "echo", "arguments": {}}}, headers=headers, timeout=20)
    assert f"127.0.0.1:{failing_mcp}" in call.text and "500" in call.text, call.text
    _assert_clean(call.text, "the error sent to the MCP client")

    # A caller that is not loopback sees only the status, unless it holds the readyz token.
    address = _non_loopback_address()
    if address is not None:
        remote = f"http://{address}:{gw.port}/readyz"
        plain = requests.get(remote, timeout=5)
        assert plain.status_code == 200 and plain.json() == {"ready": True}
        with_token = requests.get(remote, headers={"Authorization": "Bearer ops-t0ken"}, timeout=5)
        assert "upstreams" in with_token.json()
        _assert_clean(with_token.text, "/readyz (token)")
        wrong = requests.get(remote, headers={"Authorization": "Bearer nope"}, timeout=5)
        assert wrong.json() == {"ready": True}
    # Through a proxy on this host every caller looks local: forwarded requests get the status only.
    proxied = requests.get(f"{gw.base}/readyz", headers={"X-Forwarded-For": "203.0.113.9"}, timeout=5)
    assert proxied.json() == {"ready": True}

    # And the log, at DEBUG, never quotes them either.
    wait_for(lambda: "up" in gateway_proc.output(), timeout=5, what="the gateway's log")
    _assert_clean(gateway_proc.output(), "the gateway's log")


def test_readyz_checks_the_host_header(procs):
    url = f"sqlite:///{procs.log_dir / 'gw.db'}"
    gw = run_gateway(procs, url, revision=seed(url))
    resp = requests.get(f"{gw.base}/readyz", headers={"Host": "attacker.example"}, timeout=5)
    assert resp.status_code == 421
    assert requests.get(f"{gw.base}/readyz", timeout=5).json()["ready"] is True


def test_readyz_details_need_a_local_host_name_on_a_wildcard_bind(procs):
    """On a 0.0.0.0 bind a DNS-rebinding page reaches /readyz from loopback under its own name: status only."""
    url = f"sqlite:///{procs.log_dir / 'gw.db'}"
    gw = run_gateway(procs, url, revision=seed(url), args=("--host", "0.0.0.0"),
                     env={"MCPGW_ALLOW_ANONYMOUS": "true", "MCPGW_READYZ_TOKEN": "ops-t0ken",
                          "MCPGW_PUBLIC_URL": "https://gw.example.org"})
    readyz = f"{gw.base}/readyz"
    rebound = requests.get(readyz, headers={"Host": f"attacker.example:{gw.port}"}, timeout=5)
    assert rebound.status_code == 200 and rebound.json() == {"ready": True}, rebound.text
    near_miss = requests.get(readyz, headers={"Host": "127.attacker.example"}, timeout=5)
    assert near_miss.json() == {"ready": True}
    for host in (f"127.0.0.1:{gw.port}", f"localhost:{gw.port}", "gw.example.org", "GW.example.org:443"):
        assert "revision" in requests.get(readyz, headers={"Host": host}, timeout=5).json(), host
    token = requests.get(readyz, headers={"Host": "attacker.example", "Authorization": "Bearer ops-t0ken"},
                         timeout=5)
    assert "revision" in token.json()


def test_an_upstream_errors_data_is_redacted_like_its_message():
    from gateway_server.mcp import jsonrpc
    from mcpgw_sdk.client import McpError

    data = {"url": f"http://u:{SECRETS[0]}@10.0.0.5/mcp?token={SECRETS[1]}",
            "trace": [{"at": f"GET //u:{SECRETS[0]}@h/x"}, 3, None], "code": 7}
    answer = jsonrpc.error_response(1, McpError(-32001, f"failed at http://h/?api_key={SECRETS[2]}", data))
    _assert_clean(json.dumps(answer), "an upstream error sent to the MCP client")
    assert answer["error"]["code"] == -32001
    assert answer["error"]["data"]["url"] == "http://***@10.0.0.5/mcp?token=***"
    assert answer["error"]["data"]["trace"][1:] == [3, None] and answer["error"]["data"]["code"] == 7
