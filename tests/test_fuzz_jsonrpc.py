"""Hypothesis fuzzing of JSON-RPC on ``/mcp`` (with and without a session) and an SSE session's ``/message``.

Against a real gateway process: no answer is a 5xx, every JSON body (and every event on the SSE
stream) is strict JSON, and the gateway serves a normal ``tools/list`` afterwards. Bounded for CI:
a fixed number of examples, derandomized, each with a deadline.
"""

from __future__ import annotations

import json
import queue

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway_server.mcp import jsonrpc
from tests.fixtures_gateway import SseStream

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
METHODS = ["initialize", "ping", "tools/list", "tools/call", "prompts/list", "prompts/get", "resources/list",
           "resources/read", "completion/complete", "logging/setLevel", "notifications/initialized",
           "notifications/cancelled", "server/discover", "nope/nope", "", "\ud800", "tools/list\x00"]
TOOLS = ["get_user", "list_users", "no_such_tool", "\udfff"]
ODD_STRINGS = ["", "\ud800", "\udc00x", "\ud83d\ude00", "\x00", "a" * 300, "\u2028", "\\", '"', "{}"]
ODD_NUMBERS = [0, -1, 2**63, -(2**63) - 1, 10**40, 1.5, -0.0, 1e308, float("nan"), float("inf"), float("-inf")]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(ODD_STRINGS), st.sampled_from(ODD_NUMBERS))
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), st.sampled_from(ODD_STRINGS)),
                                                 inner, max_size=4)), max_leaves=12)
ids = st.one_of(st.integers(), st.text(max_size=10), st.sampled_from(ODD_STRINGS), st.sampled_from(ODD_NUMBERS),
                st.none(), st.booleans(), st.lists(st.integers(), max_size=2), st.just({"a": 1}))
params = st.one_of(
    st.none(), junk,
    st.fixed_dictionaries({"name": st.one_of(st.sampled_from(TOOLS), junk)},
                          optional={"arguments": junk, "_meta": junk, "cursor": junk}),
    st.fixed_dictionaries({"protocolVersion": st.one_of(st.sampled_from(["2024-11-05", "2025-03-26",
                                                                         "2025-11-25", "1999"]), junk)},
                          optional={"capabilities": junk, "clientInfo": junk}),
    st.fixed_dictionaries({"level": st.one_of(st.sampled_from(["debug", "info", "bogus"]), junk)}))


@st.composite
def messages(draw):
    message = {}
    if draw(st.booleans()) or draw(st.booleans()):
        message["jsonrpc"] = draw(st.one_of(st.just("2.0"), st.just("2.0"), junk))
    if draw(st.integers(0, 4)):
        message["method"] = draw(st.one_of(st.sampled_from(METHODS), junk))
    if draw(st.booleans()):
        message["id"] = draw(ids)
    if draw(st.booleans()):
        message["params"] = draw(params)
    if draw(st.integers(0, 5)) == 0:
        message[draw(st.sampled_from(["result", "error"]))] = draw(junk)
    return message


def encode(value) -> bytes:
    # ensure_ascii sends lone surrogates as \\udxxx escapes and allow_nan sends NaN/Infinity tokens
    return json.dumps(value, ensure_ascii=True, allow_nan=True).encode()


payloads = st.one_of(
    messages().map(encode),
    st.lists(messages(), min_size=0, max_size=6).map(encode),
    junk.map(encode),
    st.binary(max_size=64),
    st.tuples(messages().map(encode), st.integers(0, 80)).map(lambda pair: pair[0][:pair[1]]),  # truncated
    st.sampled_from([b"", b"{", b"[]", b"[[]]", b"null", b"[" * 5000, b'{"a":' * 3000,
                     b'{"jsonrpc":"2.0","id":1e999,"method":"ping"}', b'\xef\xbb\xbf{"jsonrpc":"2.0"}',
                     b'{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}', b'\xed\xa0\x80', b"\x00"]),
)


def strict(text: bytes):
    def refuse(name):
        raise ValueError(f"{name} is not strict JSON")

    value = json.loads(text.decode("utf-8"), parse_constant=refuse)
    assert not jsonrpc._has_lone_surrogate(value), text[:200]
    return value


def check(resp: requests.Response) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if not resp.content:
        return
    if resp.headers.get("Content-Type", "").startswith("application/json"):
        strict(resp.content)
    elif resp.headers.get("Content-Type", "").startswith("text/event-stream"):
        for line in resp.content.decode("utf-8").splitlines():
            if line.startswith("data:"):
                strict(line[5:].encode())
    else:
        assert resp.status_code == 202 and resp.content == b"Accepted", (resp.status_code, resp.content[:200])


def initialize(gw, version: str) -> str:
    resp = requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "1"}}},
        headers=ACCEPT, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.headers["Mcp-Session-Id"]


@pytest.fixture(scope="module")
def targets(shared_gateway):
    """Where payloads go: ``/mcp`` without a session, with a 2025-11-25 and a 2025-03-26 session, ``/message``."""
    gw = shared_gateway
    stream = SseStream(gw.sse_url())
    endpoint = stream.next()[1]
    found = {
        "mcp": (gw.mcp_url(), ACCEPT),
        "mcp-session": (gw.mcp_url(), {**ACCEPT, "Mcp-Session-Id": initialize(gw, "2025-11-25")}),
        "mcp-batches": (gw.mcp_url(), {**ACCEPT, "Mcp-Session-Id": initialize(gw, "2025-03-26")}),
        "message": (gw.base + endpoint, {"Content-Type": "application/json"}),
    }
    yield found, stream
    stream.close()


@settings(max_examples=150, deadline=3000, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(target=st.sampled_from(["mcp", "mcp-session", "mcp-batches", "message"]), body=payloads)
def test_fuzzed_jsonrpc_never_breaks_the_gateway(targets, target, body):
    url, headers = targets[0][target]
    check(requests.post(url, data=body, headers=headers, timeout=10))


def test_after_the_fuzzing_the_gateway_and_the_sse_session_still_serve(shared_gateway, targets):
    found, stream = targets
    gw = shared_gateway
    url, headers = found["mcp-session"]
    listed = requests.post(url, json={"jsonrpc": "2.0", "id": 99, "method": "tools/list"}, headers=headers,
                           timeout=5)
    assert listed.status_code == 200 and listed.json()["result"]["tools"]
    fresh = initialize(gw, "2025-11-25")
    listed = requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                           headers={**ACCEPT, "Mcp-Session-Id": fresh}, timeout=5)
    assert listed.status_code == 200 and listed.json()["result"]["tools"]

    url, headers = found["message"]
    assert requests.post(url, json={"jsonrpc": "2.0", "id": "after-fuzz", "method": "tools/list"},
                         headers=headers, timeout=5).status_code == 202
    while True:  # every event the fuzzing produced on the stream is strict JSON; ours comes last
        try:
            _event, data = stream.next(timeout=10)
        except queue.Empty:
            pytest.fail("the SSE session stopped answering after the fuzzing")
        reply = strict(data.encode())
        if isinstance(reply, dict) and reply.get("id") == "after-fuzz":
            break
    assert reply["result"]["tools"]
    assert requests.get(f"{gw.base}/healthz", timeout=5).status_code == 200
