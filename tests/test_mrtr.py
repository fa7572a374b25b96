"""MRTR (2026-07-28 multi-round-trip requests) through the gateway: sealed ``requestState`` and the relay.

Unit tests of :mod:`gateway_server.mcp.sealing` and :mod:`gateway_server.mcp.mrtr` (each refusal), then
end to end: the official Python client (``mcp`` 2.3.0, ``mode="2026-07-28"``) and raw POSTs against a
gateway in front of the conformance fixture (stdio, ``era: auto`` → modern), whose
``test_input_required_result_*`` tools answer ``input_required``.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import requests

from gateway_server.backends import CallContext
from gateway_server.mcp import mrtr, sealing
from gateway_server.mcp.jsonrpc import JsonRpcError
from mcpgw_sdk.store import ValueStore
from tests.fixtures_gateway import fixture_document, run_gateway, seed
from tests.helpers import Procs

PREFIX = "/gateway/mrtr"
MODERN = "2026-07-28"
TTL = 4.0  # seconds a sealed state lives in the end-to-end gateway (short, for the expiry test)
CALL = {"name": "greet", "arguments": {"who": "ada"}}


def _open(sealer: sealing.Sealer, token: str, **overrides):
    where = {"principal": "key:1", "prefix": "/p", "method": "tools/call", "params": CALL, **overrides}
    return sealer.open(token, **where)


def _seal(sealer: sealing.Sealer, **overrides) -> str:
    where = {"principal": "key:1", "prefix": "/p", "method": "tools/call", "params": CALL, "upstream": "up",
             "inner": "upstream-state", **overrides}
    return sealer.seal(**where)


def _refusal(excinfo) -> str:
    assert excinfo.value.code == -32602
    assert excinfo.value.message.startswith("requestState refused: ")
    return excinfo.value.message


@pytest.fixture(params=[True, False], ids=["aes-gcm", "hmac"])
def sealer(request):
    return sealing.Sealer(b"s" * 32, ttl=60, aead=request.param)


# --- sealing, pure -----------------------------------------------------------------------------------------


def test_a_sealed_state_opens_for_its_own_request(sealer):
    token = _seal(sealer)
    # _meta, inputResponses, requestState and unknown params do not matter; absent arguments are {}.
    retry = {**CALL, "_meta": {"progressToken": 1}, "inputResponses": {"k": {}}, "requestState": token, "x": 1}
    opened = _open(sealer, token, params=retry)
    assert opened == sealing.Opened("up", "upstream-state")
    assert _open(sealer, _seal(sealer, inner=None, upstream=None)) == sealing.Opened(None, None)
    assert "upstream-state" not in token or not sealer.aead  # AES-GCM hides the upstream's state
    assert "s" * 32 not in repr(sealer)


@pytest.mark.parametrize("change", [lambda t: t + "-TAMPERED", lambda t: t[:-3] + ("A" if t[-3] != "A" else "B") + t[-2:],
                                    lambda t: t[:10], lambda t: "", lambda t: "g1.!!!", lambda t: 42])
def test_a_tampered_state_is_refused(sealer, change):
    with pytest.raises(JsonRpcError) as exc:
        _open(sealer, change(_seal(sealer)))
    assert "not sealed by this gateway or was altered" in _refusal(exc) or "non-empty string" in _refusal(exc)


def test_a_state_sealed_with_another_key_is_refused(sealer):
    other = sealing.Sealer(b"o" * 32, ttl=60, aead=sealer.aead)
    with pytest.raises(JsonRpcError) as exc:
        _open(sealer, _seal(other))
    assert "altered" in _refusal(exc)


def test_an_expired_state_is_refused(sealer):
    token = sealer.seal(principal="key:1", prefix="/p", method="tools/call", params=CALL, upstream="up",
                        inner=None, now=time.time() - 61)
    with pytest.raises(JsonRpcError) as exc:
        _open(sealer, token)
    assert "expired" in _refusal(exc)


@pytest.mark.parametrize("overrides, why", [
    ({"principal": "key:2"}, "another caller"),
    ({"principal": ""}, "another caller"),
    ({"prefix": "/q"}, "another prefix"),
    ({"method": "prompts/get"}, "issued for tools/call"),
    ({"params": {"name": "other", "arguments": {"who": "ada"}}}, "another request"),
    ({"params": {"name": "greet", "arguments": {"who": "bob"}}}, "another request"),
])
def test_a_foreign_or_replayed_state_is_refused(sealer, overrides, why):
    with pytest.raises(JsonRpcError) as exc:
        _open(sealer, _seal(sealer), **overrides)
    assert why in _refusal(exc)


def test_resources_read_binds_the_uri(sealer):
    token = sealer.seal(principal="", prefix="/p", method="resources/read", params={"uri": "test://a"},
                        upstream="up", inner=None)
    assert sealer.open(token, principal="", prefix="/p", method="resources/read", params={"uri": "test://a"})
    with pytest.raises(JsonRpcError) as exc:
        sealer.open(token, principal="", prefix="/p", method="resources/read", params={"uri": "test://b"})
    assert "URI" in _refusal(exc)


class _Store(ValueStore):
    """A store's key/value table, as :class:`~gateway_server.api.auth.ApiState` uses it."""

    def __init__(self):
        self.values: dict[str, str] = {}

    def update_value(self, key, change):
        raise NotImplementedError

    def delete_values(self, prefix, *, below):
        raise NotImplementedError

    def get_value(self, key):
        return self.values.get(key)

    def set_value(self, key, value, *, only_if_absent=False):
        if only_if_absent and key in self.values:
            return self.values[key]
        self.values[key] = value
        return value


def test_the_key_is_the_setting_else_one_stored_once(monkeypatch):
    monkeypatch.delenv("MCPGW_STATE_SECRET", raising=False)
    store = _Store()
    first = sealing.load_secret(store)
    assert store.values[sealing.SECRET_NAME] == first and sealing.load_secret(store) == first
    monkeypatch.setenv("MCPGW_STATE_SECRET", "x" * 20)
    assert sealing.load_secret(store) == "x" * 20
    monkeypatch.setenv("MCPGW_STATE_SECRET", "short")
    with pytest.raises(Exception, match="MCPGW_STATE_SECRET"):
        sealing.load_secret(store)
    # Two processes with the same store open each other's states.
    monkeypatch.delenv("MCPGW_STATE_SECRET")
    a, b = (sealing.Sealer(sealing.load_secret(store).encode(), ttl=60) for _ in range(2))
    assert _open(b, _seal(a)).inner == "upstream-state"


# --- the relay in the core, pure ----------------------------------------------------------------------------


class _Route:
    prefix = "/p"
    tools: dict = {}


def test_relay_seals_the_upstream_state_and_checks_capabilities():
    sealing.install(sealing.Sealer(b"r" * 32, ttl=60))
    try:
        ctx = CallContext(input_upstream="up")
        asked = {"resultType": "input_required", "requestState": "inner",
                 "inputRequests": {"k": {"method": "elicitation/create", "params": {"message": "?"}}}}
        out = mrtr.relay(_Route(), None, "tools/call", CALL, ctx, {"elicitation": {}}, asked)
        assert out["inputRequests"] == asked["inputRequests"] and out["requestState"] != "inner"
        assert "ttlMs" not in out and "cacheScope" not in out
        retry = CallContext()
        mrtr.take_retry(_Route(), None, "tools/call", {**CALL, "requestState": out["requestState"],
                                                     "inputResponses": {"k": {"action": "accept"}}}, retry)
        assert (retry.request_state, retry.state_upstream, retry.input_responses) == \
            ("inner", "up", {"k": {"action": "accept"}})
        with pytest.raises(JsonRpcError) as exc:
            mrtr.relay(_Route(), None, "tools/call", CALL, ctx, {"sampling": {}}, asked)
        assert exc.value.code == -32021 and exc.value.data == {"requiredCapabilities": {"elicitation": {}}}
        with pytest.raises(JsonRpcError) as exc:
            mrtr.take_retry(_Route(), None, "tools/call", {**CALL, "inputResponses": [1]}, CallContext())
        assert exc.value.code == -32602
        # Responses without a state are taken as they are (nothing to open).
        bare = CallContext()
        mrtr.take_retry(_Route(), None, "tools/call", {**CALL, "inputResponses": {"k": {}}}, bare)
        assert bare.input_responses == {"k": {}} and bare.request_state is None
    finally:
        sealing.install(None)


# --- end to end ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """A gateway serving the fixture upstream (stdio, ``era: auto``) at :data:`PREFIX`, states valid :data:`TTL` s."""
    doc = fixture_document("mrtr", PREFIX, era="auto")
    with Procs(tmp_path_factory.mktemp("mrtr")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        yield run_gateway(procs, url, revision=seed(url, doc), env={"MCPGW_STATE_TTL": str(TTL)})


def post(gw, method: str, params: dict, *, msg_id: int = 1, capabilities: dict | None = None,
         prefix: str = PREFIX) -> requests.Response:
    """One raw modern POST to ``prefix`` (envelope and headers as the spec wants them)."""
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}} if capabilities is None else capabilities}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if "name" in params or "uri" in params:
        headers["Mcp-Name"] = params.get("name") or params["uri"]
    return requests.post(gw.mcp_url(prefix), json={"jsonrpc": "2.0", "id": msg_id, "method": method,
                                                   "params": {**params, "_meta": meta}}, headers=headers, timeout=20)


def result_of(resp: requests.Response) -> dict:
    """The JSON-RPC response of a JSON or SSE answer."""
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        import json

        datas = [line[5:].strip() for line in resp.text.splitlines() if line.startswith("data:")]
        return next(m for m in map(json.loads, datas) if "id" in m)
    return resp.json()


def ask(gw, tool: str) -> str:
    """Round one of ``tool``: its ``input_required`` answer's sealed ``requestState``."""
    resp = post(gw, "tools/call", {"name": tool, "arguments": {}})
    body = result_of(resp)
    assert resp.status_code == 200, resp.text
    result = body["result"]
    assert result["resultType"] == "input_required" and result["requestState"], result
    assert "ttlMs" not in result and "cacheScope" not in result
    return result["requestState"]


def test_the_official_client_completes_an_elicitation_through_the_gateway(gw):
    from mcp import Client, types

    asked: list[str] = []

    async def elicit(context, params):
        asked.append(params.message)
        if "confirm" in params.message.lower():
            return types.ElicitResult(action="accept", content={"ok": True})
        return types.ElicitResult(action="accept", content={"name": "Ada", "context": "maths"})

    async def main():
        async with Client(gw.mcp_url(PREFIX), mode=MODERN, elicitation_callback=elicit) as client:
            greeting = await client.call_tool("test_input_required_result_elicitation", {})
            # The upstream's own requestState goes out sealed inside the gateway's and comes back to it.
            confirmed = await client.call_tool("test_input_required_result_request_state", {})
            prompt = await client.get_prompt("test_input_required_result_prompt")
            return greeting, confirmed, prompt

    greeting, confirmed, prompt = asyncio.run(main())
    assert greeting.content[0].text == "Hello, Ada!", greeting
    assert "state-ok" in confirmed.content[0].text, confirmed
    assert "maths" in prompt.messages[0].content.text, prompt
    assert asked == ["What is your name?", "Please confirm", "What context should the prompt use?"]


def test_a_retry_with_responses_and_no_state_is_forwarded(gw):
    resp = post(gw, "tools/call", {"name": "test_input_required_result_elicitation", "arguments": {},
                                   "inputResponses": {"user_name": {"action": "accept", "content": {"name": "Bo"}},
                                                      "extra": {"action": "decline"}}})
    body = result_of(resp)
    assert body["result"]["resultType"] == "complete" and body["result"]["content"][0]["text"] == "Hello, Bo!", body


def test_a_missing_response_is_asked_again(gw):
    resp = post(gw, "tools/call", {"name": "test_input_required_result_elicitation", "arguments": {},
                                   "inputResponses": {"wrong_key": {"action": "accept", "content": {"name": "x"}}}})
    result = result_of(resp)["result"]
    assert result["resultType"] == "input_required" and "user_name" in result["inputRequests"], result


def test_only_declared_kinds_are_asked(gw):
    resp = post(gw, "tools/call", {"name": "test_input_required_result_capabilities", "arguments": {}},
                capabilities={"sampling": {}})
    result = result_of(resp)["result"]
    assert result["resultType"] == "input_required", result
    assert {r["method"] for r in result["inputRequests"].values()} == {"sampling/createMessage"}


def test_a_tampered_state_is_refused_with_400(gw):
    state = ask(gw, "test_input_required_result_tampered_state")
    resp = post(gw, "tools/call", {"name": "test_input_required_result_tampered_state", "arguments": {},
                                   "inputResponses": {"confirm": {"action": "accept", "content": {"ok": True}}},
                                   "requestState": state + "-TAMPERED"}, msg_id=7)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["id"] == 7 and body["error"]["code"] == -32602
    assert body["error"]["message"].startswith("requestState refused: ")


def test_a_state_replayed_for_another_tool_is_refused(gw):
    state = ask(gw, "test_input_required_result_tampered_state")
    resp = post(gw, "tools/call", {"name": "test_input_required_result_request_state", "arguments": {},
                                   "inputResponses": {"confirm": {"action": "accept", "content": {"ok": True}}},
                                   "requestState": state})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == -32602 and "another request" in resp.json()["error"]["message"]


def test_an_expired_state_is_refused_with_400(gw):
    state = ask(gw, "test_input_required_result_request_state")
    time.sleep(TTL + 0.5)
    resp = post(gw, "tools/call", {"name": "test_input_required_result_request_state", "arguments": {},
                                   "inputResponses": {"confirm": {"action": "accept", "content": {"ok": True}}},
                                   "requestState": state})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == -32602 and "expired" in resp.json()["error"]["message"]


def test_responses_the_upstream_refuses_are_a_json_rpc_error(gw):
    resp = post(gw, "tools/call", {"name": "test_input_required_result_elicitation", "arguments": {},
                                   "inputResponses": {"user_name": 12345}})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == -32602
    resp = post(gw, "tools/call", {"name": "test_input_required_result_elicitation", "arguments": {},
                                   "inputResponses": "not an object"})
    assert resp.status_code == 400 and "inputResponses must be an object" in resp.json()["error"]["message"]
