"""Black-box Streamable HTTP and HTTP+SSE rules, spoken with ``requests`` to a real gateway process."""

from __future__ import annotations

import json
import sys
import time

import pytest
import requests

from tests.fixtures_gateway import DEMO_PREFIX, FIXTURE, SseStream

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def rpc(method, params=None, id=1):
    msg = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        msg["params"] = params
    return msg


def init(gw, version="2025-11-25"):
    resp = requests.post(gw.mcp_url(), json=rpc("initialize", {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        headers=ACCEPT, timeout=5)
    assert resp.status_code == 200, resp.text
    sid = resp.headers["Mcp-Session-Id"]
    assert sid.isascii() and sid.isprintable() and len(sid) >= 16
    note = requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                         headers={**ACCEPT, "Mcp-Session-Id": sid}, timeout=5)
    assert note.status_code == 202 and note.content == b""
    return sid, resp.json()["result"]


def post(gw, message, sid=None, headers=None, data=None):
    h = dict(ACCEPT)
    if sid:
        h["Mcp-Session-Id"] = sid
    h.update(headers or {})
    if data is None:
        data = json.dumps(message)
    return requests.post(gw.mcp_url(), data=data, headers=h, timeout=10)


def test_initialize_negotiates_versions(shared_gateway):
    gw = shared_gateway
    for version in ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"):
        _, result = init(gw, version)
        assert result["protocolVersion"] == version
        assert result["capabilities"]["tools"] == {"listChanged": True}
    _, result = init(gw, "1999-01-01")
    assert result["protocolVersion"] == "2025-11-25"
    assert result["serverInfo"]["name"] == "mcpgw"


def test_malformed_messages(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    bad_json = post(gw, None, sid, data="{not json")
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == -32700 and bad_json.json()["id"] is None
    wrong = post(gw, {"jsonrpc": "1.0", "id": 1, "method": "ping"}, sid)
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == -32600
    null_id = post(gw, {"jsonrpc": "2.0", "id": None, "method": "ping"}, sid)
    assert null_id.status_code == 400 and null_id.json()["error"]["code"] == -32600
    unknown = post(gw, rpc("no/such/method", id=7), sid)
    assert unknown.status_code == 200
    assert unknown.json() == {"jsonrpc": "2.0", "id": 7, "error": unknown.json()["error"]}
    assert unknown.json()["error"]["code"] == -32601
    ping = post(gw, rpc("ping", id="p"), sid)
    assert ping.json() == {"jsonrpc": "2.0", "id": "p", "result": {}}


def test_sessions_missing_unknown_deleted(shared_gateway):
    gw = shared_gateway
    assert post(gw, rpc("tools/list")).status_code == 400
    assert post(gw, rpc("tools/list"), "no-such-session").status_code == 404
    sid, _ = init(gw)
    assert post(gw, rpc("tools/list"), sid).status_code == 200
    gone = requests.delete(gw.mcp_url(), headers={"Mcp-Session-Id": sid}, timeout=5)
    assert gone.status_code == 200
    assert post(gw, rpc("tools/list"), sid).status_code == 404
    assert requests.delete(gw.mcp_url(), headers={"Mcp-Session-Id": sid}, timeout=5).status_code == 404


def test_notifications_and_responses_get_202(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    for message in ({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 9}},
                    {"jsonrpc": "2.0", "id": 5, "result": {}}):
        resp = post(gw, message, sid)
        assert resp.status_code == 202 and resp.content == b""


def test_protocol_version_header(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    bad = post(gw, rpc("tools/list"), sid, headers={"MCP-Protocol-Version": "2030-01-01"})
    assert bad.status_code == 400 and "2030-01-01" in bad.json()["error"]["message"]
    ok = post(gw, rpc("tools/list"), sid, headers={"MCP-Protocol-Version": "2025-11-25"})
    assert ok.status_code == 200 and ok.json()["result"]["tools"]


def test_origin_and_host_checks(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    foreign = post(gw, rpc("ping"), sid, headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    own = post(gw, rpc("ping"), sid, headers={"Origin": f"http://localhost:{gw.port}"})
    assert own.status_code == 200
    rebinding = post(gw, rpc("ping"), sid, headers={"Host": "evil.example"})
    assert 400 <= rebinding.status_code < 500


def test_oversized_body_is_413(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    big = json.dumps(rpc("tools/call", {"name": "echo_request", "arguments": {"x": "a" * (5 * 1024 * 1024)}}))
    assert post(gw, None, sid, data=big).status_code == 413


def test_methods_not_allowed(shared_gateway):
    gw = shared_gateway
    resp = requests.put(gw.mcp_url(), data="{}", timeout=5)
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]
    sid, _ = init(gw)
    no_sse = requests.get(gw.mcp_url(), headers={"Mcp-Session-Id": sid, "Accept": "application/json"}, timeout=5)
    assert no_sse.status_code == 405


def test_unknown_prefix_is_404_with_jsonrpc_body(shared_gateway):
    resp = requests.post(f"{shared_gateway.base}/nowhere/mcp", json=rpc("ping"), timeout=5)
    assert resp.status_code == 404 and resp.json()["error"]["code"] == -32601


def test_batches_only_for_2025_03_26(shared_gateway):
    gw = shared_gateway
    old, _ = init(gw, "2025-03-26")
    batch = [rpc("ping", id=1), rpc("tools/list", id=2), {"jsonrpc": "2.0", "method": "notifications/initialized"}]
    resp = post(gw, batch, old)
    assert resp.status_code == 200
    assert sorted(r["id"] for r in resp.json()) == [1, 2]
    assert post(gw, [], old).json()["error"]["code"] == -32600
    new, _ = init(gw, "2025-06-18")
    refused = post(gw, batch, new)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == -32600


def test_modern_probe_on_streamable_http(shared_gateway):
    # P/mcp is dual-era: the modern probe is served (tests/test_modern.py holds every rule).
    modern = {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "server/discover"}
    bare = post(shared_gateway, rpc("server/discover", {}), headers=modern)
    assert bare.status_code == 400 and bare.json()["error"]["code"] == -32602 and bare.json()["id"] == 1
    envelope = {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                          "io.modelcontextprotocol/clientCapabilities": {}}}
    resp = post(shared_gateway, rpc("server/discover", envelope), headers=modern)
    assert resp.status_code == 200 and "Mcp-Session-Id" not in resp.headers
    assert "2026-07-28" in resp.json()["result"]["supportedVersions"]


def test_tools_call_rules(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    ok = post(gw, rpc("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}}), sid).json()
    assert ok["result"]["isError"] is False and "Ada Lovelace" in ok["result"]["content"][0]["text"]
    unknown = post(gw, rpc("tools/call", {"name": "nope", "arguments": {}}), sid).json()
    assert unknown["error"]["code"] == -32602
    bad = post(gw, rpc("tools/call", {"name": "get_user", "arguments": {"email": 5}}), sid).json()
    assert bad["result"]["isError"] is True and "email" in bad["result"]["content"][0]["text"]
    missing = post(gw, rpc("tools/call", {"name": "get_user", "arguments": {}}), sid).json()
    assert missing["result"]["isError"] is True and "'email'" in missing["result"]["content"][0]["text"]


def test_old_versions_get_no_structured_content(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw, "2025-03-26")
    result = post(gw, rpc("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}}), sid).json()
    assert "structuredContent" not in result["result"]
    assert "Ada Lovelace" in result["result"]["content"][0]["text"]
    tools = post(gw, rpc("tools/list"), sid).json()["result"]["tools"]
    assert all("outputSchema" not in t and "title" not in t for t in tools)


def test_pagination_cursor(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    first = post(gw, rpc("tools/list"), sid).json()["result"]
    assert len(first["tools"]) == 10 and "nextCursor" not in first
    bad = post(gw, rpc("tools/list", {"cursor": "garbage!"}), sid).json()
    assert bad["error"]["code"] == -32602


def test_sse_transport_rules(shared_gateway):
    gw = shared_gateway
    stream = SseStream(gw.sse_url())
    try:
        event, endpoint = stream.next()
        assert event == "endpoint" and endpoint.startswith(f"{DEMO_PREFIX}/message?sessionId=")
        url = gw.base + endpoint
        accepted = requests.post(url, json=rpc("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                                              "clientInfo": {"name": "t", "version": "1"}}), timeout=5)
        assert accepted.status_code == 202
        event, data = stream.next()
        assert event == "message" and json.loads(data)["result"]["protocolVersion"] == "2024-11-05"
        # the modern probe: 202 and the error on the stream
        probe = requests.post(url, json=rpc("server/discover", {}, id=2), headers={"MCP-Protocol-Version": "2026-07-28"},
                              timeout=5)
        assert probe.status_code == 202
        assert json.loads(stream.next()[1])["error"]["code"] == -32601
        assert requests.post(url, data="{bad", timeout=5).status_code == 400
        assert requests.post(f"{gw.base}{DEMO_PREFIX}/message", json=rpc("ping"), timeout=5).status_code == 400
        assert requests.post(f"{gw.base}{DEMO_PREFIX}/message?sessionId=nope", json=rpc("ping"),
                             timeout=5).status_code == 404
        requests.post(url, json=rpc("tools/call", {"name": "get_user", "arguments": {"email": "alan@example.com"}},
                                    id=3), timeout=5)
        reply = json.loads(stream.next()[1])
        assert reply["id"] == 3 and "Alan Turing" in reply["result"]["content"][0]["text"]
    finally:
        stream.close()


def test_sse_heartbeat_and_session_end(shared_gateway):
    gw = shared_gateway
    stream = SseStream(gw.sse_url())
    _, endpoint = stream.next()
    raw = []
    # heartbeats are comments: check the raw stream of a second connection instead of the parsed one
    with requests.get(gw.sse_url(), headers={"Accept": "text/event-stream"}, stream=True, timeout=(5, 10)) as resp:
        for line in resp.iter_lines(decode_unicode=True):
            raw.append(line)
            if line.startswith(":"):
                break
    assert any(line.startswith(":") for line in raw)
    stream.close()
    url = gw.base + endpoint

    def gone():
        return requests.post(url, json=rpc("ping"), timeout=5).status_code == 404

    from tests.helpers import wait_for

    wait_for(gone, timeout=15, what="session removed after its stream closed")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_operational_endpoints(shared_gateway, path):
    resp = requests.get(shared_gateway.base + path, timeout=5)
    assert resp.status_code == 200
    if path == "/readyz":
        assert resp.json()["revision"] >= 1 and DEMO_PREFIX in resp.json()["routes"]
    if path == "/metrics":
        assert "mcpgw_tool_calls_total" in resp.text and "mcpgw_config_revision" in resp.text


def test_router_cors_and_preflight(seeded_store, start_gateway):
    store, url, backend = seeded_store
    from tests.fixtures_gateway import demo_document

    doc = demo_document(backend, name="cors", prefix="/gateway/cors")
    doc["routers"][0]["cors"] = {"allowOrigins": ["https://app.example"], "allowCredentials": True}
    store.save_document(doc)
    gw = start_gateway(url)
    gw.wait_revision(store.revision())
    mcp = gw.mcp_url("/gateway/cors")
    pre = requests.options(mcp, headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type,mcp-session-id"}, timeout=5)
    assert pre.status_code == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert "mcp-session-id" in pre.headers["Access-Control-Allow-Headers"].lower()
    resp = requests.post(mcp, json=rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                      "clientInfo": {"name": "t", "version": "1"}}),
                         headers={**ACCEPT, "Origin": "https://app.example"}, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "Mcp-Session-Id" in resp.headers["Access-Control-Expose-Headers"]
    other = requests.options(gw.mcp_url(), headers={"Origin": "https://app.example"}, timeout=5)
    assert other.status_code == 403  # the demo router lists no origins


def test_mcpgw_serve_command(tmp_path, seeded_store, start_gateway):
    import shutil
    import subprocess

    from tests.helpers import python

    mcpgw = shutil.which("mcpgw") or str(__import__("pathlib").Path(python()).parent / "mcpgw")
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    refused = subprocess.run([mcpgw, "serve", "--db", empty, "--port", "1"], capture_output=True, text=True,
                             timeout=60)
    assert refused.returncode != 0 and "mcpgw db upgrade" in refused.stderr
    store, url, _ = seeded_store
    gw = start_gateway(url, command=[mcpgw, "serve", "--db", "{db}", "--port", "{port}"])
    assert gw.wait_revision(store.revision())["routes"] == [DEMO_PREFIX]


# -- the IO-free core and the snapshot builder, with backends built by a fake factory -------------------


class _Backend:
    """A backend whose tools are given; ``set_logging_level`` marks it as one that may notify."""

    def __init__(self, *, name, server, tools=None, document=None, **_):
        self.name = name
        self.tools = [{"name": t["name"], "inputSchema": {"type": "object"}} for t in tools or []] or [
            {"name": f"t{i:03d}", "inputSchema": {"type": "object"}} for i in range(int(server.get("count", 0)))]
        self.closed = False

    def list_tools(self):
        return self.tools

    def call_tool(self, name, arguments, ctx):
        if ctx.notify:
            ctx.notify({"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": ctx.progress_token, "progress": 1}})
        return {"content": [{"type": "audio", "data": "AAAA", "mimeType": "audio/wav"},
                            {"type": "resource_link", "uri": "file:///x", "name": "x"}],
                "structuredContent": {"n": 1}, "isError": False}

    def set_logging_level(self, level, ctx):
        pass

    def close(self):
        self.closed = True


def _config(revision, docs):
    from mcpgw_sdk.records import ConfigSet, Document

    return ConfigSet(revision, tuple(Document("default", d["name"], d, 1) for d in docs), (), ())


def _doc(name, prefix, count):
    return {"name": name, "tenant": "default", "routers": [{"prefix": prefix, "server": "s"}],
            "servers": [{"name": "s", "config": {"count": str(count)}}],
            "tools": [{"name": f"t{i:03d}", "method": "GET", "endpoint": "http://127.0.0.1:1/x"} for i in range(count)]}


def test_core_pagination_versions_and_backend_reuse():
    from gateway_server.backends import CallContext
    from gateway_server.mcp import core
    from gateway_server.sessions import Session
    from gateway_server.snapshot import build_snapshot, retired_backends

    first = build_snapshot(_config(1, [_doc("a", "/a", 250), _doc("b", "/b", 1)]), make=lambda kind, **kw: _Backend(**kw))
    route = first.routes["/a"]
    session = Session(id="s", prefix="/a", transport="streamable")
    core.dispatch(route, session, rpc("initialize", {"protocolVersion": "2025-03-26"}), CallContext())
    names, cursor = [], None
    while True:
        page = core.dispatch(route, session, rpc("tools/list", {"cursor": cursor} if cursor else {}), CallContext())
        names += [t["name"] for t in page["result"]["tools"]]
        cursor = page["result"].get("nextCursor")
        if not cursor:
            break
    assert names == [f"t{i:03d}" for i in range(250)]
    result = core.dispatch(route, session, rpc("tools/call", {"name": "t001", "arguments": {}}), CallContext())["result"]
    assert [c["type"] for c in result["content"]] == ["audio", "text"] and "structuredContent" not in result
    session.protocol_version = "2024-11-05"
    result = core.dispatch(route, session, rpc("tools/call", {"name": "t001"}), CallContext())["result"]
    assert [c["type"] for c in result["content"]] == ["text", "text"]

    # /b unchanged: its backend is reused; /a changed: its backend retires
    second = build_snapshot(_config(2, [_doc("a", "/a", 3), _doc("b", "/b", 1)]), first,
                            make=lambda kind, **kw: _Backend(**kw))
    assert second.routes["/b"].backends[0] is first.routes["/b"].backends[0]
    assert retired_backends(first, second) == [first.routes["/a"].backends[0]]
    assert second.routes["/a"].digest != first.routes["/a"].digest


def test_streamable_streams_notifications_of_notifying_backends():
    import io

    from gateway_server.app import create_app
    from gateway_server.snapshot import build_snapshot

    class Store:
        def revision(self):
            return 1

        def load_config(self):
            return _config(1, [_doc("a", "/a", 2)])

        def write_audit(self, items):
            pass

    app = create_app(store=Store(), audit=False)
    app.gateway.snapshot = build_snapshot(Store().load_config(), make=lambda kind, **kw: _Backend(**kw))

    def call(message, sid=None):
        body = json.dumps(message).encode()
        env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/a/mcp", "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body), "HTTP_HOST": "127.0.0.1", "SERVER_PORT": "5235",
               "HTTP_ACCEPT": "application/json, text/event-stream", "wsgi.url_scheme": "http"}
        if sid:
            env["HTTP_MCP_SESSION_ID"] = sid
        seen = {}
        chunks = b"".join(app(env, lambda status, headers, exc=None: seen.update(status=status, headers=dict(headers))))
        return seen, chunks

    seen, _ = call(rpc("initialize", {"protocolVersion": "2025-11-25"}))
    sid = seen["headers"]["Mcp-Session-Id"]
    seen, body = call(rpc("tools/call", {"name": "t000", "arguments": {}, "_meta": {"progressToken": "p1"}}, id=9), sid)
    assert seen["headers"]["Content-Type"] == "text/event-stream"
    events = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
    assert events[0]["method"] == "notifications/progress" and events[0]["params"]["progressToken"] == "p1"
    assert events[-1]["id"] == 9 and events[-1]["result"]["structuredContent"] == {"n": 1}


def test_apikey_router(seeded_store, start_gateway):
    store, url, backend = seeded_store
    from tests.fixtures_gateway import demo_document

    doc = demo_document(backend, name="locked", prefix="/gateway/locked")
    doc["routers"][0]["auth"] = {"mode": "apikey"}
    store.save_document(doc)
    store.create_user("alice", "a-long-password", tenants=["default"])
    _, full = store.create_key("alice", "default")
    _, narrow = store.create_key("alice", "default", tools=["get_user"])
    gw = start_gateway(url)
    gw.wait_revision(store.revision())
    mcp = gw.mcp_url("/gateway/locked")
    hello = rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}})
    refused = requests.post(mcp, json=hello, headers=ACCEPT, timeout=5)
    # an API-key router challenges for a key, never Bearer (which sends MCP clients into OAuth discovery)
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("ApiKey ")
    assert requests.post(mcp, json=hello, headers={**ACCEPT, "Authorization": "Bearer wrong"},
                         timeout=5).status_code == 401

    def tools(secret):
        auth = {**ACCEPT, "Authorization": f"Bearer {secret}"}
        resp = requests.post(mcp, json=hello, headers=auth, timeout=5)
        assert resp.status_code == 200, resp.text
        auth["Mcp-Session-Id"] = resp.headers["Mcp-Session-Id"]
        listed = requests.post(mcp, json=rpc("tools/list", id=2), headers=auth, timeout=5).json()["result"]["tools"]
        call = requests.post(mcp, json=rpc("tools/call", {"name": "list_users", "arguments": {}}, id=3), headers=auth,
                             timeout=5).json()["result"]
        return [t["name"] for t in listed], call

    names, call = tools(full)
    assert len(names) == 10 and not call["isError"]
    names, call = tools(narrow)
    assert names == ["get_user"] and call["isError"]
    # the open demo router stays open on a loopback-bound gateway
    assert requests.post(gw.mcp_url(), json=hello, headers=ACCEPT, timeout=5).status_code == 200


@pytest.mark.parametrize("allow", [False, True])
def test_open_routers_beyond_loopback_need_allow_anonymous(allow):
    import io

    from gateway_server.app import create_app
    from gateway_server.snapshot import build_snapshot

    app = create_app(store=object(), host="0.0.0.0", audit=False, allow_anonymous=allow)
    app.gateway.snapshot = build_snapshot(_config(1, [_doc("a", "/a", 1)]), make=lambda kind, **kw: _Backend(**kw))
    body = json.dumps(rpc("initialize", {"protocolVersion": "2025-11-25"})).encode()
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": "/a/mcp", "CONTENT_LENGTH": str(len(body)),
           "wsgi.input": io.BytesIO(body), "HTTP_HOST": "gw.example:5235", "SERVER_PORT": "5235",
           "wsgi.url_scheme": "http"}
    seen = {}
    out = b"".join(app(env, lambda status, headers, exc=None: seen.update(status=status)))
    if allow:
        assert seen["status"].startswith("200")
    else:
        assert seen["status"].startswith("401") and b"MCPGW_ALLOW_ANONYMOUS" in out


def test_tool_calls_are_audited_off_the_request_path(shared_gateway):
    from mcpgw_sdk.opening import open_store
    from tests.helpers import wait_for

    gw = shared_gateway
    sid, _ = init(gw)
    post(gw, rpc("tools/call", {"name": "get_user", "arguments": {"email": "alan@example.com"}}), sid)
    post(gw, rpc("tools/call", {"name": "get_user", "arguments": {"email": "nobody@example.com"}}), sid)
    store = open_store(gw.db_url)
    try:
        def records():
            found = [r for r in store.query_audit(tool="get_user", limit=500) if r.session_id == sid]
            return found if len(found) == 2 else None

        found = wait_for(records, timeout=10, what="two audit records of this session")
        assert sorted(r.outcome for r in found) == ["error", "ok"]
        assert all(r.prefix == DEMO_PREFIX and r.server == "users" and r.latency_ms > 0 for r in found)
    finally:
        store.close()


def test_deeply_nested_input_is_a_parse_error_not_a_500(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    for data in ("[" * 100_000, '{"a":' * 100_000):
        resp = post(gw, None, sid, data=data)
        assert resp.status_code == 400, resp.text[:300]
        assert resp.json()["id"] is None and resp.json()["error"]["code"] == -32700
        assert "nested too deeply" in resp.json()["error"]["message"]
    stream = SseStream(gw.sse_url())
    try:
        _, endpoint = stream.next()
        resp = requests.post(gw.base + endpoint, data="[" * 100_000, timeout=10)
        assert resp.status_code == 400 and "nested too deeply" in resp.json()["error"]["message"]
    finally:
        stream.close()


def test_error_messages_say_what_is_wrong_and_echo_the_id(shared_gateway):
    gw = shared_gateway
    sid, _ = init(gw)
    nameless = post(gw, rpc("tools/call", {"arguments": {}}, id=11), sid).json()
    assert nameless["id"] == 11 and nameless["error"]["code"] == -32602
    assert nameless["error"]["message"] == "params.name: required"
    wrong_name = post(gw, rpc("tools/call", {"name": 5}, id=12), sid).json()
    assert wrong_name["error"]["message"] == "params.name: must be a string"
    object_id = post(gw, {"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"}, sid)
    assert object_id.status_code == 400 and object_id.json()["error"]["code"] == -32600
    message = object_id.json()["error"]["message"]
    assert "'id' must be a string or a number" in message and "null" not in message
    for params in ([1, 2], "text", 3):
        resp = post(gw, {"jsonrpc": "2.0", "id": 13, "method": "tools/list", "params": params}, sid)
        assert resp.status_code == 400 and resp.json()["id"] == 13, resp.text
        assert "'params' must be an object" in resp.json()["error"]["message"]


def test_tools_list_waits_for_a_starting_upstream_and_calls_say_it_is_connecting(tmp_path, start_gateway):
    from tests.fixtures_gateway import seed

    go = tmp_path / "go"  # the upstream answers initialize only once this file exists
    code = ("import os, runpy, sys, time, mcp.server.mcpserver, mcp.server.transport_security\n"
            f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
            f"sys.argv = [{FIXTURE!r}]; runpy.run_path({FIXTURE!r}, run_name='__main__')")
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    revision = seed(url, {"name": "slow", "tenant": "default", "routers": [{"prefix": "/gateway/slow", "server": "slow"}],
                          "mcpServers": [{"name": "slow", "type": "stdio", "command": sys.executable,
                                          "args": ["-c", code]}]})
    gw = start_gateway(url)
    gw.wait_revision(revision)
    assert [u["state"] for u in gw.readyz()["upstreams"]] == ["connecting"]
    mcp = f"{gw.base}/gateway/slow/mcp"
    opened = requests.post(mcp, json=rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                        "clientInfo": {"name": "t", "version": "1"}}),
                           headers=ACCEPT, timeout=10)
    headers = {**ACCEPT, "Mcp-Session-Id": opened.headers["Mcp-Session-Id"]}
    started = time.monotonic()
    listed = requests.post(mcp, json=rpc("tools/list", {}, id=2), headers=headers, timeout=20).json()
    assert listed["result"]["tools"] == [] and time.monotonic() - started < 8  # a bounded wait: about 5 s
    called = requests.post(mcp, json=rpc("tools/call", {"name": "test_simple_text"}, id=3), headers=headers,
                           timeout=20).json()
    assert called["result"]["isError"] is True
    assert called["result"]["content"][0]["text"] == \
        "tool test_simple_text is not available yet: upstream slow is still connecting (no answer yet)"
    go.touch()
    listed = requests.post(mcp, json=rpc("tools/list", {}, id=4), headers=headers, timeout=20).json()
    assert "test_simple_text" in [t["name"] for t in listed["result"]["tools"]], listed
