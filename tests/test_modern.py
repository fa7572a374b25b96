"""MCP 2026-07-28 (stateless) beside the legacy era on ``P/mcp``: the pure rules and raw HTTP against a gateway.

One gateway serves the demo REST tools open (``/gateway/demo``) and behind API keys
(``/gateway/locked``, with ``routers[].cache``), and the conformance fixture upstream over stdio
(``/gateway/conformance``).
"""

from __future__ import annotations

import doctest
import sys

import pytest
import requests

from gateway_server.mcp import modern
from gateway_server.mcp.jsonrpc import JsonRpcError
from tests.fixtures_gateway import FIXTURE, demo_document, migrated_store, run_backend, run_gateway
from tests.helpers import Procs

OPEN = "/gateway/demo"
LOCKED = "/gateway/locked"
UPSTREAM = "/gateway/conformance"
V = "2026-07-28"
SUPPORTED = ["2026-07-28", "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]
CAPS = {"io.modelcontextprotocol/clientCapabilities": {}}


def meta(**extra) -> dict:
    """A valid modern ``_meta`` envelope."""
    return {"io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "1"}, **extra}


def body(method: str, params: dict | None = None, *, id=1, envelope: dict | None = None) -> dict:
    """A modern JSON-RPC request (``envelope`` replaces the default ``_meta``)."""
    return {"jsonrpc": "2.0", "id": id, "method": method,
            "params": {**(params or {}), "_meta": meta() if envelope is None else envelope}}


def headers_for(message: dict, **extra) -> dict:
    """The headers a modern client sends with ``message``."""
    out = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
           "MCP-Protocol-Version": V, "Mcp-Method": message["method"]}
    field = modern.NAME_BEARING.get(message["method"])
    if field and field in message.get("params", {}):
        out["Mcp-Name"] = modern.encode_header_value(message["params"][field])
    out.update(extra)
    return {k: v for k, v in out.items() if v is not None}


def send(url: str, message, **extra) -> requests.Response:
    """POST ``message`` with its modern headers (``extra`` overrides; ``None`` removes one)."""
    hdrs = headers_for(message if isinstance(message, dict) else message[0], **extra)
    return requests.post(url, json=message, headers=hdrs, timeout=20)


# -- the pure module -------------------------------------------------------------------------------


def test_doctests_of_the_modern_module():
    assert doctest.testmod(modern).failed == 0


def test_base64_header_values_decode_strictly():
    assert modern.decode_header_value(modern.encode_header_value("Hello, 世界")) == "Hello, 世界"
    assert modern.encode_header_value("=?base64?literal?=") == "=?base64?PT9iYXNlNjQ/bGl0ZXJhbD89?="
    assert modern.decode_header_value("plain") == "plain"
    for bad in ("=?base64?not base64!?=", "=?base64?SGk?=", "=?base64?/w==?="):  # junk, unpadded, not UTF-8
        assert modern.decode_header_value(bad) is None


def test_era_routing_rules():
    assert modern.is_modern({"mcp-protocol-version": "v999.0.0"}, None)
    assert not modern.is_modern({"mcp-protocol-version": "2025-06-18"}, None)
    assert modern.is_modern({}, body("tools/list"))
    assert modern.is_modern({}, [body("tools/list")])
    assert not modern.is_modern({"mcp-protocol-version": "2030-01-01", "mcp-session-id": "s"}, None)
    assert not modern.is_modern({}, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})


@pytest.mark.parametrize("message, hdrs, code", [
    (body("tools/list", envelope={}), {}, -32602),
    (body("tools/list", envelope={"io.modelcontextprotocol/protocolVersion": V}), {}, -32602),
    (body("tools/list"), {"MCP-Protocol-Version": None}, -32020),
    (body("tools/list"), {"MCP-Protocol-Version": "2025-11-25"}, -32020),
    (body("tools/list"), {"Mcp-Method": None}, -32020),
    (body("tools/list"), {"Mcp-Method": "prompts/list"}, -32020),
    (body("tools/call", {"name": "x"}), {"Mcp-Name": None}, -32020),
    (body("tools/call", {"name": "x"}), {"Mcp-Name": "y"}, -32020),
    (body("tools/call", {"name": "x"}), {"Mcp-Name": "=?base64?eA?="}, -32020),
    (body("tools/list", envelope={**meta(), "io.modelcontextprotocol/protocolVersion": "v9"}),
     {"MCP-Protocol-Version": "v9"}, -32022),
])
def test_classify_ladder(message, hdrs, code):
    lowered = {k.lower(): v for k, v in headers_for(message, **hdrs).items()}
    with pytest.raises(JsonRpcError) as caught:
        modern.classify(message, lowered)
    assert caught.value.code == code and caught.value.msg_id == 1
    if code == -32022:
        assert caught.value.data == {"supported": SUPPORTED, "requested": "v9"}


def test_classify_accepts_base64_name_and_missing_client_info():
    message = body("tools/call", {"name": "wörld"}, envelope={**CAPS, "io.modelcontextprotocol/protocolVersion": V})
    lowered = {k.lower(): v for k, v in headers_for(message).items()}
    assert lowered["mcp-name"].startswith("=?base64?")
    assert modern.classify(message, lowered).protocol_version == V


def test_classify_fast_path_keeps_the_ladder():
    # a body name that looks like the base64 sentinel must come base64-encoded, even when sent verbatim
    message = body("tools/call", {"name": "=?base64?eA?="})
    lowered = {k.lower(): v for k, v in headers_for(message, **{"Mcp-Name": "=?base64?eA?="}).items()}
    with pytest.raises(JsonRpcError) as caught:
        modern.classify(message, lowered)
    assert caught.value.code == -32020
    level = body("tools/list", envelope=meta(**{"io.modelcontextprotocol/logLevel": "loud"}))
    with pytest.raises(JsonRpcError) as caught:
        modern.classify(level, {k.lower(): v for k, v in headers_for(level).items()})
    assert caught.value.code == -32602
    ok = body("tools/call", {"name": "t"}, envelope=meta(**{"io.modelcontextprotocol/logLevel": "info"}))
    envelope = modern.classify(ok, {k.lower(): v for k, v in headers_for(ok).items()})
    assert envelope == modern.Envelope(V, {}, {"name": "raw", "version": "1"}, "info")


def test_only_requests_that_may_notify_run_beside_their_answer():
    from types import SimpleNamespace

    from gateway_server.backends.rest import RestServer
    from gateway_server.mcp import core

    class Upstream:  # declares nothing: may notify, like an upstream MCP server
        name = "up"

    class Rest:  # what RestServer declares
        name, may_notify = "rest", RestServer.may_notify

    assert RestServer.may_notify is False and RestServer.static_capabilities is True
    rest, up = Rest(), Upstream()

    def route(*backends):
        tools = {"r": SimpleNamespace(backend=rest), "u": SimpleNamespace(backend=up)}
        return SimpleNamespace(backends=backends, tools=tools, _memo={})

    plain, logs = modern.Envelope(V), modern.Envelope(V, log_level="info")
    both = route(rest, up)
    assert not core.modern_may_notify(both, plain, "tools/call", {"name": "r"})
    assert not core.modern_may_notify(both, plain, "tools/call", {"name": "unknown"})
    assert core.modern_may_notify(both, plain, "tools/call", {"name": "u"})
    assert core.modern_may_notify(both, plain, "tools/call", {"name": "r", "_meta": {"progressToken": 1}})
    assert core.modern_may_notify(both, logs, "tools/call", {"name": "r"})
    assert core.modern_may_notify(both, plain, "resources/read", {"uri": "x"})
    assert not core.modern_may_notify(route(rest), plain, "prompts/get", {"name": "p"})


def test_one_status_table():
    assert [modern.http_status(c) for c in (-32700, -32600, -32601, -32602, -32020, -32021, -32022, -32603)] == \
        [400, 400, 404, 400, 400, 400, 400, 200]


# -- a real gateway ---------------------------------------------------------------------------------


class Env:
    """The running gateway and the API keys made for the tests."""

    def __init__(self, gw, keys):
        self.gw, self.keys = gw, keys

    def url(self, prefix: str = OPEN) -> str:
        return self.gw.mcp_url(prefix)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with Procs(tmp_path_factory.mktemp("modern")) as procs:
        backend = run_backend(procs)
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        store = migrated_store(url)
        try:
            locked = demo_document(backend, name="locked", prefix=LOCKED)
            locked["routers"][0]["auth"] = {"mode": "apikey"}
            locked["routers"][0]["cache"] = {"ttlMs": 5000, "readTtlMs": 100}
            upstream = {"name": "conformance", "tenant": "default",
                        "routers": [{"prefix": UPSTREAM, "server": "fixture"}],
                        "mcpServers": [{"name": "fixture", "type": "stdio", "command": sys.executable,
                                        "args": [FIXTURE], "toolPrefix": ""}]}
            for doc in (demo_document(backend), locked, upstream):
                store.save_document(doc)
            store.create_user("alice", "a-long-password", tenants=["default"])
            keys = {"full": store.create_key("alice", "default")[1],
                    "two": store.create_key("alice", "default", tools=["list_users", "echo_request"])[1]}
            gw = run_gateway(procs, url, revision=store.revision())
            yield Env(gw, keys)
        finally:
            store.close()


def test_discover_on_an_open_prefix(env):
    resp = send(env.url(), body("server/discover"))
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    assert "Mcp-Session-Id" not in resp.headers
    result = resp.json()["result"]
    assert result["resultType"] == "complete" and result["supportedVersions"] == SUPPORTED
    # REST tools and the document's prompts; list changes come through subscriptions/listen, logs per request.
    assert result["capabilities"] == {"tools": {"listChanged": True}, "prompts": {"listChanged": True},
                                      "logging": {}}
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcpgw"
    assert result["ttlMs"] == 60000 and result["cacheScope"] == "public"


def test_discover_without_client_info_and_on_an_upstream_prefix(env):
    envelope = {**CAPS, "io.modelcontextprotocol/protocolVersion": V}
    result = send(env.url(UPSTREAM), body("server/discover", envelope=envelope)).json()["result"]
    caps = result["capabilities"]
    assert {"tools", "prompts", "resources", "completions", "logging"} <= set(caps)
    # The upstream offers resources/subscribe: served as resourceSubscriptions of subscriptions/listen.
    assert caps["tools"]["listChanged"] and caps["resources"]["subscribe"] is True


@pytest.mark.parametrize("case", ["no_meta", "no_version", "no_caps"])
def test_missing_envelope_fields_are_400_invalid_params(env, case):
    envelope = {"no_meta": {}, "no_version": {**CAPS}, "no_caps": {"io.modelcontextprotocol/protocolVersion": V}}
    message = body("server/discover", id=101, envelope=envelope[case])
    if case == "no_meta":
        message["params"] = {}
    resp = send(env.url(), message)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32602 and resp.json()["id"] == 101


def test_unsupported_version_is_400_with_supported_and_requested(env):
    message = body("server/discover", id=301, envelope={**meta(), "io.modelcontextprotocol/protocolVersion": "v999.0.0"})
    resp = send(env.url(), message, **{"MCP-Protocol-Version": "v999.0.0"})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == -32022 and resp.json()["id"] == 301
    assert error["data"] == {"supported": SUPPORTED, "requested": "v999.0.0"}


@pytest.mark.parametrize("hdrs", [
    {"MCP-Protocol-Version": None}, {"Mcp-Method": None}, {"Mcp-Method": "tools/list"},
    {"Mcp-Name": None}, {"Mcp-Name": "list_users"}, {"Mcp-Name": "=?base64?Z2V0X3VzZXI?="},
    {"Mcp-Name": "=?BASE64?Z2V0X3VzZXI=?="},
])
def test_header_mismatches_are_400_header_mismatch(env, hdrs):
    message = body("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}}, id=7)
    resp = send(env.url(), message, **hdrs)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32020 and resp.json()["id"] == 7


def test_header_version_differs_from_body_version(env):
    message = body("server/discover", id=302, envelope={**meta(), "io.modelcontextprotocol/protocolVersion": "v999.0.0"})
    resp = send(env.url(), message)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32020


def test_base64_mcp_name_matches(env):
    message = body("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}})
    resp = send(env.url(), message, **{"Mcp-Name": "=?base64?Z2V0X3VzZXI=?="})
    assert resp.status_code == 200 and "Ada Lovelace" in resp.json()["result"]["content"][0]["text"]


@pytest.mark.parametrize("method", ["initialize", "ping", "logging/setLevel", "resources/subscribe",
                                    "resources/unsubscribe", "unknown/method",
                                    "completion/complete", "resources/read"])
def test_removed_unknown_and_unoffered_methods_are_404(env, method):
    params = {"uri": "test://static-text"} if method.startswith("resources/") else {}
    resp = send(env.url(), body(method, params, id=601))
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == -32601 and resp.json()["id"] == 601


def test_tools_list_and_call_are_stateless(env):
    listed = send(env.url(), body("tools/list"), **{"Mcp-Session-Id": "not-a-session"})
    assert listed.status_code == 200 and "Mcp-Session-Id" not in listed.headers
    result = listed.json()["result"]
    assert result["resultType"] == "complete" and result["cacheScope"] == "public" and result["ttlMs"] == 60000
    names = [t["name"] for t in result["tools"]]
    again = [t["name"] for t in send(env.url(), body("tools/list", id=2)).json()["result"]["tools"]]
    assert names == again and "get_user" in names
    assert any("outputSchema" in t for t in result["tools"])  # the newest descriptor shapes
    called = send(env.url(), body("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}}))
    assert called.status_code == 200 and "Mcp-Session-Id" not in called.headers
    out = called.json()["result"]
    assert out["resultType"] == "complete" and out["isError"] is False and "structuredContent" in out
    assert "ttlMs" not in out and out["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "mcpgw"
    unknown = send(env.url(), body("tools/call", {"name": "nope", "arguments": {}}))
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == -32602


def _answered(env) -> float:
    metrics = requests.get(env.gw.base + "/metrics", timeout=5).text
    line = next(x for x in metrics.splitlines() if x.startswith("mcpgw_mcp_request_seconds_count"))
    return float(line.split()[-1])


def test_modern_calls_count_in_request_latency(env):
    before = _answered(env)
    rest = send(env.url(), body("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}}))
    assert rest.status_code == 200 and rest.headers["Content-Type"].startswith("application/json")
    assert _answered(env) == before + 1  # inline (REST, no progress, no logs)
    upstream = send(env.url(UPSTREAM), body("tools/call", {"name": "test_simple_text", "arguments": {}}))
    assert upstream.status_code == 200 and upstream.json()["result"]["isError"] is False
    assert _answered(env) == before + 2  # beside its answer (an upstream may notify)
    progress = send(env.url(), body("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}},
                                    envelope=meta(progressToken="p-1")))
    assert progress.status_code == 200 and progress.json()["result"]["isError"] is False
    assert _answered(env) == before + 3


def test_batches_notifications_and_responses(env):
    batch = send(env.url(), [body("tools/list")])
    assert batch.status_code == 400 and batch.json()["error"]["code"] == -32600
    note = send(env.url(), {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"_meta": meta()}})
    assert note.status_code == 202 and note.content == b"" and "Mcp-Session-Id" not in note.headers


@pytest.mark.parametrize("verb", ["GET", "DELETE"])
def test_get_and_delete_with_the_modern_header_are_405(env, verb):
    resp = requests.request(verb, env.url(), headers={"MCP-Protocol-Version": V, "Accept": "text/event-stream"},
                            timeout=5)
    assert resp.status_code == 405 and resp.headers["Allow"] == "POST"


def test_legacy_sessions_still_work_beside(env):
    hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
             "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    resp = requests.post(env.url(), json=hello, headers={"Accept": "application/json, text/event-stream"}, timeout=5)
    assert resp.status_code == 200 and resp.headers["Mcp-Session-Id"]
    assert resp.json()["result"]["protocolVersion"] == "2025-11-25"


def test_apikey_router_is_checked_per_request_and_private(env):
    message = body("tools/list")
    assert send(env.url(LOCKED), message).status_code == 401
    auth = {"Authorization": f"Bearer {env.keys['full']}"}
    result = send(env.url(LOCKED), message, **auth).json()["result"]
    assert result["cacheScope"] == "private" and result["ttlMs"] == 5000
    discover = send(env.url(LOCKED), body("server/discover"), **auth).json()["result"]
    assert discover["cacheScope"] == "private" and discover["ttlMs"] == 5000
    scoped = send(env.url(LOCKED), message, **{"Authorization": f"Bearer {env.keys['two']}"}).json()["result"]
    assert sorted(t["name"] for t in scoped["tools"]) == ["echo_request", "list_users"]
    denied = send(env.url(LOCKED), body("tools/call", {"name": "get_user", "arguments": {"email": "a@b.c"}}),
                  **{"Authorization": f"Bearer {env.keys['two']}"}).json()["result"]
    assert denied["isError"] is True and "not allowed" in denied["content"][0]["text"]


def test_upstream_tools_prompts_resources_and_completion(env):
    url = env.url(UPSTREAM)
    tools = send(url, body("tools/list")).json()["result"]
    assert "test_simple_text" in [t["name"] for t in tools["tools"]] and tools["cacheScope"] == "public"
    text = send(url, body("tools/call", {"name": "test_simple_text", "arguments": {}})).json()["result"]
    assert text["content"][0]["text"] == "This is a simple text response for testing."
    for method, key in (("prompts/list", "prompts"), ("resources/list", "resources"),
                        ("resources/templates/list", "resourceTemplates")):
        result = send(url, body(method)).json()["result"]
        assert result[key] and result["resultType"] == "complete" and result["cacheScope"] == "public"
    read = send(url, body("resources/read", {"uri": "test://static-text"})).json()["result"]
    assert read["contents"][0]["text"] == "This is the content of the static text resource."
    assert read["ttlMs"] == 0 and read["cacheScope"] == "public"
    prompt = send(url, body("prompts/get", {"name": "test_prompt_with_arguments",
                                            "arguments": {"arg1": "hello", "arg2": "world"}})).json()["result"]
    assert prompt["messages"] and prompt["resultType"] == "complete"
    completion = send(url, body("completion/complete", {"ref": {"type": "ref/prompt",
                                                                "name": "test_prompt_with_arguments"},
                                                        "argument": {"name": "arg1", "value": "test"}}))
    assert isinstance(completion.json()["result"]["completion"]["values"], list), completion.text


def test_missing_client_capability_is_400_with_required_capabilities(env):
    message = body("tools/call", {"name": "test_sampling", "arguments": {"prompt": "hi"}}, id=401)
    resp = send(env.url(UPSTREAM), message)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == -32021 and resp.json()["id"] == 401
    assert error["data"]["requiredCapabilities"] == {"sampling": {}}
