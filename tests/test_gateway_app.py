"""The gateway app in-process: its transports and the protocol rules through a WSGI test client.

The app comes from the factory (:func:`gateway_server.app.create_app`) on a SQLite store holding the demo
document. Its REST tools reach the demo user service, served from a thread on a loopback port that the
document names literally (so the address guard lets it through). No subprocess and no gevent: this is the
fast layer's view of what the end-to-end tests check against a real ``mcpgw serve``.
"""

from __future__ import annotations

import json
import threading

import pytest
from werkzeug.test import Client

from gateway_server.app import create_app
from gateway_server.demo.backend import UserService
from tests.fixtures_gateway import DEMO_PREFIX, demo_document, migrated_store
from tests.helpers import wsgi_server

MCP = f"{DEMO_PREFIX}/mcp"
ACCEPT = {"Accept": "application/json, text/event-stream"}
LEGACY = "2025-11-25"
MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A werkzeug test client of a started gateway app serving the demo document at ``/gateway/demo``."""
    backend = wsgi_server(UserService())
    serving = threading.Thread(target=backend.serve_forever, daemon=True)
    serving.start()
    store = migrated_store(f"sqlite:///{tmp_path_factory.mktemp('app') / 'gw.db'}")
    store.save_document(demo_document(f"http://127.0.0.1:{backend.server_port}"))
    # A short heartbeat lets an SSE test see its stream listening (a ping) before it posts.
    app = create_app(store=store, audit=False, reload_interval=60, sse_heartbeat=0.05).start()
    try:
        yield Client(app)
    finally:
        app.stop()
        store.close()
        backend.shutdown()
        backend.server_close()


def rpc(method: str, params: dict | None = None, *, id: int | None = 1) -> dict:
    """A JSON-RPC request (a notification without ``id``)."""
    message = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return message


def post(client: Client, message, *, session: str | None = None, headers: dict | None = None):
    """POST ``message`` (JSON, or raw bytes) to the demo prefix's ``/mcp``."""
    hdrs = {**ACCEPT, **({"Mcp-Session-Id": session} if session else {}), **(headers or {})}
    if isinstance(message, bytes):
        return client.post(MCP, data=message, headers={**hdrs, "Content-Type": "application/json"})
    return client.post(MCP, json=message, headers=hdrs)


def initialize(client: Client, *, version: str = LEGACY) -> str:
    """A legacy session: ``initialize`` then ``notifications/initialized``; returns its id."""
    resp = post(client, rpc("initialize", {"protocolVersion": version, "capabilities": {},
                                           "clientInfo": {"name": "t", "version": "1"}}))
    assert resp.status_code == 200, resp.text
    assert resp.json["result"]["protocolVersion"] == version
    sid = resp.headers["Mcp-Session-Id"]
    assert post(client, rpc("notifications/initialized", id=None), session=sid).status_code == 202
    return sid


def modern(method: str, params: dict | None = None, *, id: int = 1) -> tuple[dict, dict]:
    """A 2026-07-28 request and the headers a modern client sends with it."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method == "tools/call":
        headers["Mcp-Name"] = params["name"]
    return rpc(method, {**(params or {}), "_meta": meta}, id=id), headers


def test_initialize_list_and_call_over_streamable_http(client):
    sid = initialize(client)
    listed = post(client, rpc("tools/list", id=2), session=sid)
    assert listed.status_code == 200
    names = {tool["name"] for tool in listed.json["result"]["tools"]}
    assert {"list_users", "get_user"} <= names
    called = post(client, rpc("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}}, id=3),
                  session=sid)
    result = called.json["result"]
    assert called.json["id"] == 3 and result["isError"] is False
    assert "Ada Lovelace" in result["content"][0]["text"]
    missing = post(client, rpc("tools/call", {"name": "get_user", "arguments": {"email": "nobody@example.com"}},
                               id=4), session=sid)
    assert missing.json["result"]["isError"] is True  # the backend's 404 is the tool's error, not JSON-RPC's


def test_an_unknown_tool_or_method_is_a_json_rpc_error(client):
    sid = initialize(client)
    unknown = post(client, rpc("tools/call", {"name": "nope", "arguments": {}}, id=5), session=sid)
    assert unknown.json["id"] == 5 and unknown.json["error"]["code"] == -32602
    assert "unknown tool 'nope'" in unknown.json["error"]["message"]
    method = post(client, rpc("no/such/method", id=6), session=sid)
    assert method.json["id"] == 6 and method.json["error"]["code"] == -32601


@pytest.mark.parametrize(("body", "code"), [
    (b'{"jsonrpc":"2.0","id":1,"method":"ping"', -32700),
    (b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}', -32700),
    (b"\xff\xfe{}", -32700),
    (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', -32600),
    (b'"just a string"', -32600),
])
def test_malformed_json_rpc_is_400_with_parse_or_invalid_request(client, body, code):
    resp = post(client, body)
    assert resp.status_code == 400
    assert resp.json["error"]["code"] == code


def test_a_call_without_a_session_or_with_a_stale_one_is_refused(client):
    assert post(client, rpc("tools/list")).status_code == 400
    stale = post(client, rpc("tools/list"), session="no-such-session")
    assert stale.status_code == 404


def test_batches_are_answered_up_to_the_cap_and_refused_beyond(client):
    sid = initialize(client, version="2025-03-26")  # the one revision with JSON-RPC batches
    answered = post(client, [rpc("ping", id=i) for i in range(1, 101)], session=sid)
    assert answered.status_code == 200
    assert sorted(reply["id"] for reply in answered.json) == list(range(1, 101))
    refused = post(client, [rpc("ping", id=i) for i in range(1, 102)], session=sid)
    assert refused.status_code == 400
    error = refused.json["error"]
    assert error["code"] == -32600 and "101" in error["message"] and "max_batch" in error["message"]
    later = post(client, [rpc("ping", id=1), rpc("ping", id=2)], session=initialize(client))
    assert later.status_code == 400 and "batches are not part of protocol version" in later.json["error"]["message"]


def test_delete_ends_a_session(client):
    sid = initialize(client)
    assert client.delete(MCP, headers={"Mcp-Session-Id": sid}).status_code in (200, 204)
    assert post(client, rpc("ping"), session=sid).status_code == 404


def test_modern_discover_list_and_call_are_stateless(client):
    message, headers = modern("server/discover")
    discovered = post(client, message, headers=headers)
    assert discovered.status_code == 200 and "Mcp-Session-Id" not in discovered.headers
    result = discovered.json["result"]
    assert MODERN in result["supportedVersions"] and LEGACY in result["supportedVersions"]
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcpgw"
    message, headers = modern("tools/list", id=2)
    listed = post(client, message, headers=headers)
    assert "get_user" in {tool["name"] for tool in listed.json["result"]["tools"]}
    message, headers = modern("tools/call", {"name": "get_user", "arguments": {"email": "grace@example.com"}}, id=3)
    called = post(client, message, headers=headers)
    assert called.status_code == 200 and "Mcp-Session-Id" not in called.headers
    assert "Grace Hopper" in called.json["result"]["content"][0]["text"]


def test_modern_header_mismatch_and_legacy_methods_are_refused(client):
    message, headers = modern("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}}, id=7)
    mismatch = post(client, message, headers={**headers, "Mcp-Name": "list_users"})
    assert mismatch.status_code == 400 and mismatch.json["error"]["code"] == -32020
    message, headers = modern("initialize", id=8)
    removed = post(client, message, headers=headers)
    assert removed.status_code == 404 and removed.json["error"]["code"] == -32601


def test_the_legacy_sse_transport_answers_on_its_stream(client):
    stream = client.get(f"{DEMO_PREFIX}/sse", headers={"Accept": "text/event-stream"}, buffered=False)
    try:
        assert stream.status_code == 200 and stream.mimetype == "text/event-stream"
        chunks = iter(stream.response)
        first = next(chunks).decode()
        assert first.startswith("event: endpoint\ndata: ")
        endpoint = first.split("data: ", 1)[1].strip()
        assert endpoint.startswith(f"{DEMO_PREFIX}/message?sessionId=")
        assert next(chunks) == b": ping\n\n"  # the stream listens now: replies posted from here reach it
        hello = rpc("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                   "clientInfo": {"name": "t", "version": "1"}})
        assert client.post(endpoint, json=hello).status_code == 202
        assert client.post(endpoint, json=rpc("tools/list", id=2)).status_code == 202
        replies = {}
        while len(replies) < 2:
            chunk = next(chunks).decode()
            if chunk.startswith("event: message"):
                reply = json.loads(chunk.split("data: ", 1)[1])
                replies[reply["id"]] = reply
        assert replies[1]["result"]["protocolVersion"] == "2024-11-05"
        assert "get_user" in {tool["name"] for tool in replies[2]["result"]["tools"]}
    finally:
        stream.close()
    assert client.post(endpoint, json=rpc("ping")).status_code == 404  # closing the stream ended the session


def test_health_readiness_and_metrics(client):
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["ready"] is True
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "mcpgw_" in metrics.get_data(as_text=True)
    assert client.get("/gateway/nowhere/mcp").status_code == 404


def test_the_audit_record_of_a_call_is_the_models_own(client):
    """``Gateway.observe`` fills its AuditRecord in one step (``app.audit_record``): the same record, still frozen."""
    import dataclasses

    from mcpgw_sdk.records import AuditRecord

    gateway = client.application.gateway
    seen = []

    class Audit:
        def add(self, record):
            seen.append(record)

    gateway.audit, before = Audit(), gateway.audit
    try:
        sid = initialize(client)
        called = post(client, rpc("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}},
                                  id=7), session=sid)
    finally:
        gateway.audit = before
    assert called.json["result"]["isError"] is False
    [record] = seen
    expected = AuditRecord(**{f.name: getattr(record, f.name) for f in dataclasses.fields(AuditRecord)})
    assert record == expected and repr(record) == repr(expected) and hash(record) == hash(expected)
    assert (record.prefix, record.tool, record.outcome, record.session_id, record.id) == \
        (DEMO_PREFIX, "get_user", "ok", sid, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.tool = "other"
