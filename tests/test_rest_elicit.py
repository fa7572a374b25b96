"""A REST tool's ``elicit`` block: the gateway asks the user before the backend call.

End to end: a real gateway (subprocess) in front of an in-process REST backend that records every
request, called with the official Python client (``mcp`` 2.3.0) in both eras: 2026-07-28
(``input_required`` with a sealed ``requestState``, then the retry) and legacy (``elicitation/create``
over the session). Declining never reaches the backend. Then raw modern POSTs for the capability and
answer checks, and the save-time validation of the block.
"""

from __future__ import annotations

import asyncio
import copy

import pytest
import requests

from mcpgw_sdk.documents import validate
from mcpgw_sdk.errors import ConfigError
from tests.fixtures_gateway import run_gateway, seed
from tests.helpers import Procs, RecordingBackend

PREFIX = "/gateway/elicit"
MODERN = "2026-07-28"
SCHEMA = {"type": "object", "properties": {"confirm": {"type": "boolean"}, "reason": {"type": "string"}},
          "required": ["confirm"]}


def document(base: str) -> dict:
    return {"name": "elicit", "tenant": "default", "routers": [{"prefix": PREFIX, "server": "users"}],
            "servers": [{"name": "users", "config": {"baseUrl": base}}],
            "tools": [{"name": "delete_user", "method": "DELETE",
                       "endpoint": "{{ config.baseUrl }}/users/{{ args.email }}",
                       "args": [{"name": "email", "position": "path", "required": True},
                                {"name": "reason", "position": "query"}],
                       "elicit": {"message": "Delete {{ args.email }}?", "requestedSchema": SCHEMA,
                                  "fill": {"reason": "reason"}}}]}


class Recorder(RecordingBackend):
    """A REST backend that records every request and answers ``{"ok": true}``."""

    def __init__(self):
        super().__init__({"ok": True})

    def calls(self) -> list[str]:
        """``METHOD path?query`` of each request recorded so far, forgotten here."""
        calls = []
        for request in self.take():
            query = request["target"].partition("?")[2]
            calls.append(f"{request['method']} {request['path']}" + (f"?{query}" if query else ""))
        return calls


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    with Recorder() as recorder, Procs(tmp_path_factory.mktemp("elicit")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        yield run_gateway(procs, url, revision=seed(url, document(recorder.url))), recorder


@pytest.fixture
def gw(setup):
    setup[1].take()
    return setup


def call(gw, mode: str, answer, email: str = "ada@example.com"):
    """``delete_user(email)`` through the official client; ``answer(message)`` is the user's ElicitResult."""
    from mcp import Client

    asked: list[str] = []

    async def elicit(context, params):
        asked.append(params.message)
        return answer(params)

    async def main():
        async with Client(gw.mcp_url(PREFIX), mode=mode, elicitation_callback=elicit) as client:
            return await client.call_tool("delete_user", {"email": email})

    return asyncio.run(main()), asked


def accept(params):
    from mcp import types

    return types.ElicitResult(action="accept", content={"confirm": True, "reason": "left"})


def decline(params):
    from mcp import types

    return types.ElicitResult(action="decline")


@pytest.mark.parametrize("mode", [MODERN, "legacy"])
def test_accepting_calls_the_backend_with_the_filled_argument(gw, mode):
    proc, recorder = gw
    result, asked = call(proc, mode, accept)
    assert not result.is_error, result
    assert asked == ["Delete ada@example.com?"]
    assert recorder.calls() == ["DELETE /users/ada@example.com?reason=left"]


@pytest.mark.parametrize("mode", [MODERN, "legacy"])
def test_declining_never_reaches_the_backend(gw, mode):
    proc, recorder = gw
    result, asked = call(proc, mode, decline)
    assert asked == ["Delete ada@example.com?"]
    assert "declined" in result.content[0].text and "nothing was sent" in result.content[0].text, result
    assert recorder.calls() == []


def test_confirm_false_counts_as_declining(gw):
    from mcp import types

    proc, recorder = gw
    result, _ = call(proc, MODERN, lambda p: types.ElicitResult(action="accept", content={"confirm": False}))
    assert "declined" in result.content[0].text, result
    assert recorder.calls() == []


# --- raw modern requests ---------------------------------------------------------------------------------


def post(gw, params: dict, *, capabilities: dict | None = None) -> requests.Response:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}} if capabilities is None else capabilities}
    headers = {"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": MODERN,
               "Mcp-Method": "tools/call", "Mcp-Name": params["name"]}
    return requests.post(gw.mcp_url(PREFIX), json={"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                                   "params": {**params, "_meta": meta}}, headers=headers, timeout=20)


CALL = {"name": "delete_user", "arguments": {"email": "bo@example.com"}}


def test_the_modern_question_and_its_sealed_state(gw):
    proc, recorder = gw
    result = post(proc, CALL).json()["result"]
    assert result["resultType"] == "input_required", result
    assert result["inputRequests"] == {"elicit": {"method": "elicitation/create", "params": {
        "message": "Delete bo@example.com?", "requestedSchema": SCHEMA}}}
    state = result["requestState"]
    assert state and "mcpgw-rest-elicit" not in state  # sealed (AES-GCM), not the bare marker
    yes = {"elicit": {"action": "accept", "content": {"confirm": True}}}
    # The answer without the gateway's state is asked again; a state for other arguments is refused.
    again = post(proc, {**CALL, "inputResponses": yes}).json()["result"]
    assert again["resultType"] == "input_required"
    other = post(proc, {"name": "delete_user", "arguments": {"email": "eve@example.com"},
                        "inputResponses": yes, "requestState": state})
    assert other.status_code == 400 and other.json()["error"]["code"] == -32602
    bad = post(proc, {**CALL, "inputResponses": {"elicit": {"action": "accept", "content": {"confirm": "yes"}}},
                      "requestState": state})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == -32602, bad.text
    assert recorder.calls() == []
    done = post(proc, {**CALL, "inputResponses": yes, "requestState": state}).json()["result"]
    assert done.get("isError") is not True and done["resultType"] == "complete", done
    assert recorder.calls() == ["DELETE /users/bo@example.com"]


def test_a_modern_client_without_elicitation_gets_32021(gw):
    proc, recorder = gw
    resp = post(proc, CALL, capabilities={"sampling": {}})
    error = resp.json()["error"]
    assert error["code"] == -32021 and error["data"] == {"requiredCapabilities": {"elicitation": {}}}, error
    assert recorder.calls() == []


def test_a_legacy_client_without_elicitation_gets_a_tool_error(gw):
    from mcp import Client

    proc, recorder = gw

    async def main():
        async with Client(proc.mcp_url(PREFIX), mode="legacy") as client:
            return await client.call_tool("delete_user", {"email": "cy@example.com"})

    result = asyncio.run(main())
    assert result.is_error and "elicitation capability" in result.content[0].text, result
    assert recorder.calls() == []


# --- validation at save --------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, expected", [
    (lambda e: e.pop("message"), "tools[0].elicit.message: required"),
    (lambda e: e["requestedSchema"].update(type="array"), "tools[0].elicit.requestedSchema.type: must be 'object'"),
    (lambda e: e["requestedSchema"]["properties"].update(who={"type": "object"}),
     "tools[0].elicit.requestedSchema.properties.who.type: 'object' is not one of"),
    (lambda e: e["requestedSchema"].update(required=["nope"]), "tools[0].elicit.requestedSchema.required: 'nope'"),
    (lambda e: e.update(fill={"reason": "why"}), "tools[0].elicit.fill.reason: 'why' is not an argument"),
    (lambda e: e.update(fill={"mood": "reason"}), "tools[0].elicit.fill.mood: is not a field"),
    (lambda e: e.update(message="{{ args.email"), "tools[0].elicit.message: template does not parse"),
    (lambda e: e.update(ask=True), "tools[0].elicit: unknown key 'ask'"),
])
def test_a_bad_elicit_block_is_refused_with_its_path(change, expected):
    doc = copy.deepcopy(document("http://127.0.0.1:1"))
    assert validate(copy.deepcopy(doc))["tools"][0]["elicit"]["fill"] == {"reason": "reason"}
    change(doc["tools"][0]["elicit"])
    with pytest.raises(ConfigError) as exc:
        validate(doc)
    assert any(f"default/elicit: {expected}" in line for line in exc.value.errors), exc.value.errors


def test_the_message_is_a_template_field():
    from mcpgw_sdk.documents import iter_templates

    assert "tools[0].elicit.message" in [p for p, _c, _k in iter_templates(document("http://127.0.0.1:1"))]
