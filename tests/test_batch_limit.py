"""JSON-RPC batches are capped (``max_batch``) on ``/mcp`` and ``/message``; batches under the cap work."""

from __future__ import annotations

import json

import requests

from tests.fixtures_gateway import SseStream

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def pings(count: int) -> list[dict]:
    return [{"jsonrpc": "2.0", "id": i, "method": "ping"} for i in range(1, count + 1)]


def batch_session(gw) -> str:
    resp = requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers=ACCEPT, timeout=5)
    assert resp.status_code == 200, resp.text
    return resp.headers["Mcp-Session-Id"]


def test_a_batch_over_the_cap_is_refused_and_one_under_it_is_answered(shared_gateway):
    gw = shared_gateway
    headers = {**ACCEPT, "Mcp-Session-Id": batch_session(gw)}
    refused = requests.post(gw.mcp_url(), json=pings(101), headers=headers, timeout=10)
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == -32600 and "101" in error["message"] and "max_batch" in error["message"]

    answered = requests.post(gw.mcp_url(), json=pings(100), headers=headers, timeout=10)
    assert answered.status_code == 200
    assert sorted(r["id"] for r in answered.json()) == list(range(1, 101))


def test_a_batch_over_the_cap_on_message_is_refused(shared_gateway):
    gw = shared_gateway
    stream = SseStream(gw.sse_url())
    try:
        url = gw.base + stream.next()[1]
        refused = requests.post(url, json=pings(101), timeout=10)
        assert refused.status_code == 400 and refused.json()["error"]["code"] == -32600
        assert requests.post(url, json=pings(3), timeout=10).status_code == 202
        assert sorted(json.loads(stream.next()[1])["id"] for _ in range(3)) == [1, 2, 3]
    finally:
        stream.close()
