"""Legacy upstream → modern client: a legacy upstream's server→client request held as ``input_required``.

The official Python client (``mcp`` 2.3.0, ``mode="2026-07-28"``) and raw POSTs call the conformance
fixture (stdio, pinned ``era: legacy``) through the gateway. The fixture's ``test_elicitation`` and
``test_sampling`` tools send ``elicitation/create``/``sampling/createMessage`` during the call: the
gateway holds the upstream call and answers ``input_required`` with a sealed ``requestState`` naming the
held call; the retry's ``inputResponses`` answers the upstream and returns the tool's result.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway_server.mcp import sealing
from tests.fixtures_gateway import fixture_document, run_gateway, seed
from tests.helpers import Procs
from tests.test_mrtr import MODERN, post, result_of

PREFIX = "/gateway/mrtr"  # test_mrtr.post posts here
SECRET = "held-call-test-secret-0123456789"
HELD_TIMEOUT = 3.0
ELICIT = {"name": "test_elicitation", "arguments": {"message": "Who are you?"}}
ANSWER = {"action": "accept", "content": {"username": "ada", "email": "ada@example.org"}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    doc = fixture_document("held", PREFIX, era="legacy")
    with Procs(tmp_path_factory.mktemp("held")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        yield run_gateway(procs, url, revision=seed(url, doc),
                          env={"MCPGW_STATE_SECRET": SECRET, "MCPGW_HELD_CALL_TIMEOUT": str(HELD_TIMEOUT)})


SEALER = sealing.Sealer(SECRET.encode(), ttl=600)


def ask(gw) -> dict:
    resp = post(gw, "tools/call", ELICIT)
    assert resp.status_code == 200, resp.text
    result = result_of(resp)["result"]
    assert result["resultType"] == "input_required", result
    return result


def retry(gw, state: str, responses: dict, msg_id: int = 2):
    return post(gw, "tools/call", {**ELICIT, "inputResponses": responses, "requestState": state}, msg_id=msg_id)


def test_the_official_client_answers_a_legacy_upstreams_requests(gw):
    from mcp import Client, types

    asked: list[str] = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"username": "ada", "email": "ada@example.org"})

    async def sample(context, params):
        asked.append(params.messages[0].content.text)
        return types.CreateMessageResult(role="assistant", content=types.TextContent(type="text", text="forty-two"),
                                         model="test-model")

    async def main():
        async with Client(gw.mcp_url(PREFIX), mode=MODERN, elicitation_callback=elicit,
                          sampling_callback=sample) as client:
            return (await client.call_tool("test_elicitation", {"message": "Who are you?"}),
                    await client.call_tool("test_sampling", {"prompt": "What is six times seven?"}))

    elicited, sampled = asyncio.run(main())
    assert not elicited.is_error and elicited.content[0].text == (
        'User response: action=accept, content={"username": "ada", "email": "ada@example.org"}'), elicited
    assert not sampled.is_error and sampled.content[0].text == "LLM response: forty-two", sampled
    assert asked == ["Who are you?", "What is six times seven?"]


def test_prompts_get_and_resources_read_are_held_too(gw):
    from mcp import Client, types

    asked: list[str] = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"topic": "tides"})

    async def main():
        async with Client(gw.mcp_url(PREFIX), mode=MODERN, elicitation_callback=elicit) as client:
            return (await client.get_prompt("test_prompt_with_elicitation"),
                    await client.read_resource("test://elicited-topic/Topic"))

    prompt, resource = asyncio.run(main())
    assert prompt.messages[0].content.text == "Write about tides.", prompt
    assert resource.contents[0].text == "Topic: tides", resource
    assert asked == ["Which topic?", "Which topic?"]


def test_a_held_prompt_whose_client_cannot_answer_gets_32021(gw):
    resp = post(gw, "prompts/get", {"name": "test_prompt_with_elicitation"}, capabilities={"sampling": {}})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == -32021 and error["data"]["requiredCapabilities"] == {"elicitation": {}}, error


def test_a_raw_retry_completes_the_held_call(gw):
    result = ask(gw)
    (key, request), = result["inputRequests"].items()
    assert request["method"] == "elicitation/create" and request["params"]["message"] == "Who are you?", request
    done = result_of(retry(gw, result["requestState"], {key: ANSWER}))["result"]
    assert done["resultType"] == "complete" and "ada@example.org" in done["content"][0]["text"], done
    # The held call is gone: the same state again is refused.
    again = retry(gw, result["requestState"], {key: ANSWER})
    assert again.status_code == 400 and "expired or already finished" in again.json()["error"]["message"]


def test_a_tampered_state_is_refused(gw):
    result = ask(gw)
    key = next(iter(result["inputRequests"]))
    resp = retry(gw, result["requestState"] + "-TAMPERED", {key: ANSWER}, msg_id=7)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["id"] == 7 and body["error"]["code"] == -32602
    assert body["error"]["message"].startswith("requestState refused: ")


def _forged(state: str, inner: str) -> str:
    opened = SEALER.open(state, principal="", prefix=PREFIX, method="tools/call", params=ELICIT)
    assert opened.inner.startswith("held:") and opened.upstream == "fixture", opened
    return SEALER.seal(principal="", prefix=PREFIX, method="tools/call", params=ELICIT, upstream="fixture",
                       inner=inner(opened.inner) if callable(inner) else inner)


def test_an_unknown_held_call_gets_a_clear_error(gw):
    result = ask(gw)
    key = next(iter(result["inputRequests"]))
    other = _forged(result["requestState"], "held:999999.0123456789ab:nope")
    resp = retry(gw, other, {key: ANSWER})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["code"] == -32602 and "another gateway worker" in error["message"], error
    assert "Redis routing is not configured" in error["message"], error
    unknown = _forged(result["requestState"], lambda inner: inner.rsplit(":", 1)[0] + ":unknown-id")
    resp = retry(gw, unknown, {key: ANSWER})
    assert resp.status_code == 400 and "expired or already finished" in resp.json()["error"]["message"], resp.text


def test_an_expired_held_call_is_cancelled_and_refused(gw):
    result = ask(gw)
    key = next(iter(result["inputRequests"]))
    time.sleep(HELD_TIMEOUT + 1.0)
    resp = retry(gw, result["requestState"], {key: ANSWER})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == -32602 and "expired" in resp.json()["error"]["message"], resp.text


def test_held_calls_are_bounded_per_principal_and_per_process(monkeypatch):
    from gateway_server.backends import held

    monkeypatch.setenv("MCPGW_MAX_HELD_CALLS_PER_PRINCIPAL", "2")
    monkeypatch.setenv("MCPGW_MAX_HELD_CALLS", "3")
    monkeypatch.setattr(held, "_held", {})
    for principal in ("key:1", "key:1", "sub:ann"):
        assert held.refusal(principal) is None
        call = held.Held("up", 60.0, principal)
        held._held[call.id] = call
    assert "max_held_calls=3" in held.refusal("sub:bob")
    held._held.pop(call.id)  # sub:ann's
    assert "max_held_calls_per_principal=2" in held.refusal("key:1")
    assert held.refusal("sub:ann") is None
