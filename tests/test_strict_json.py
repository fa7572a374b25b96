"""Bad JSON-RPC input is a 4xx with -32700/-32600, never a 500, and every answer is strict JSON.

Lone surrogates and ``NaN``/``Infinity``/``1e999`` ids used to give HTTP 500, kill the SSE stream,
or be echoed as invalid JSON.
"""

from __future__ import annotations

import json

import pytest
import requests

from gateway_server.mcp import jsonrpc
from tests.fixtures_gateway import SseStream

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
BAD = [
    (rb'{"jsonrpc":"2.0","id":"\ud800","method":"ping"}', -32700),
    (rb'{"jsonrpc":"2.0","id":1,"method":"\udfff"}', -32700),
    (rb'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x\udc00"}}', -32700),
    (b'{"jsonrpc":"2.0","id":NaN,"method":"ping"}', -32700),
    (b'{"jsonrpc":"2.0","id":Infinity,"method":"ping"}', -32700),
    (b'{"jsonrpc":"2.0","id":-Infinity,"method":"ping"}', -32700),
    (b'{"jsonrpc":"2.0","id":1e999,"method":"ping"}', -32700),
    (b'{"jsonrpc":"2.0","id":1,"method":"ping"', -32700),
    (b'\xff\xfe{}', -32700),
    (b'{"jsonrpc":"2.0","id":[1],"method":"ping"}', -32600),
    (b'{"jsonrpc":"2.0","method":"notifications/cancelled","params":[1]}', -32600),
    (b'"just a string"', -32600),
]


def strict(text: bytes):
    """Parse as RFC 8259 JSON: no NaN/Infinity, UTF-8 without lone surrogates."""
    def refuse(name):
        raise ValueError(f"{name} in a response")

    value = json.loads(text.decode("utf-8"), parse_constant=refuse)
    assert not jsonrpc._has_lone_surrogate(value), text
    return value


def session(gw) -> str:
    resp = requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers=ACCEPT, timeout=5)
    return resp.headers["Mcp-Session-Id"]


@pytest.mark.parametrize(("body", "code"), BAD)
def test_bad_json_on_mcp_is_400_with_a_strict_json_error(shared_gateway, body, code):
    gw = shared_gateway
    for headers in (ACCEPT, {**ACCEPT, "Mcp-Session-Id": session(gw)}):
        resp = requests.post(gw.mcp_url(), data=body, headers=headers, timeout=5)
        assert resp.status_code == 400, (body, resp.status_code, resp.text)
        assert strict(resp.content)["error"]["code"] == code


def test_the_sse_session_survives_bad_message_posts(shared_gateway):
    gw = shared_gateway
    stream = SseStream(gw.sse_url())
    try:
        url = gw.base + stream.next()[1]
        for body, _ in BAD:
            resp = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=5)
            assert resp.status_code in (202, 400), (body, resp.status_code, resp.text)
            if resp.status_code == 400:
                strict(resp.content)
        assert requests.post(url, json={"jsonrpc": "2.0", "id": 7, "method": "tools/list"},
                             timeout=5).status_code == 202
        while True:  # errors for the well-formed but invalid posts come first, each strict JSON
            event, data = stream.next()
            reply = strict(data.encode())
            if reply.get("id") == 7:
                break
        assert reply["result"]["tools"]
    finally:
        stream.close()


def test_responses_are_strict_json_whatever_they_carry():
    out = jsonrpc.dumps({"id": 1, "result": {"x": float("nan"), "y": float("inf"), "s": "a\ud800b"}})
    assert strict(out) == {"id": 1, "result": {"x": None, "y": None, "s": "a\ufffdb"}}
    assert jsonrpc.parse(rb'{"ok":"\ud83d\ude00","esc":"\\ud800"}') == {"ok": "\U0001F600", "esc": "\\ud800"}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32-le", "utf-32"])
def test_a_body_in_any_json_encoding_parses_to_the_same_message(encoding):
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "t", "arguments": {"q": "é✓"}}}
    body = json.dumps(message, ensure_ascii=False).encode(encoding)
    assert jsonrpc.parse(body) == message
