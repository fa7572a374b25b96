"""Every era pair through the gateway: legacy and 2026-07-28 clients × legacy and modern upstreams.

One gateway serves the conformance fixture (stdio) twice: pinned ``era: legacy`` at :data:`LEGACY_UP`
and pinned ``era: 2026-07-28`` at :data:`MODERN_UP` (pinned, not ``auto``: on a dual-era upstream a
legacy client's callbacks would go to a legacy upstream session, i.e. the legacy × legacy path again).
The official Python client (``mcp`` 2.3.0), in ``mode="legacy"`` or ``mode="2026-07-28"``, calls a
tool that elicits and one that samples in each of the four pairs; what the gateway does differs per
pair (docs/eras.md, "Multi-round-trip requests (MRTR)"):

=======  ========  =================================================================================
client   upstream  a call that needs input
=======  ========  =================================================================================
legacy   legacy    passthrough: the upstream's ``elicitation/create``/``sampling/createMessage`` reaches
                   the client over its session (fixture tools ``test_elicitation``, ``test_sampling``)
legacy   modern    bridged: the upstream answers ``input_required``, the gateway asks the client over its
                   session and retries the upstream (``test_input_required_result_elicitation|sampling``)
modern   legacy    held: the upstream's request becomes ``input_required``, the retry answers it
modern   modern    relayed: the upstream's ``input_required`` goes to the client, its state sealed
=======  ========  =================================================================================

Each case asserts that the value the client's callback gave comes back in the tool's result. For the
modern client, raw POSTs (:func:`tests.test_mrtr.post`) check on both upstreams that a tampered
``requestState`` is refused with -32602 (and leaves the genuine one usable), and that one older than
``MCPGW_STATE_TTL`` (:data:`TTL`) is refused as expired.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.fixtures_gateway import fixture_document, run_gateway, seed
from tests.helpers import Procs, wait_for
from tests.test_mrtr import MODERN, post, result_of

LEGACY_UP = "/gateway/era-pairs-legacy"  # the fixture pinned legacy: a session, server→client requests
MODERN_UP = "/gateway/era-pairs-modern"  # the fixture pinned 2026-07-28: stateless, input_required
PREFIXES = {"legacy": LEGACY_UP, "modern": MODERN_UP}
MODES = {"legacy": "legacy", "modern": MODERN}  # the official client's mode per client era
TTL = 3.0  # seconds a sealed requestState lives (short, for the expiry test)

# (upstream era, kind) → the fixture tool that asks for that input, its arguments, and what it asks.
TOOLS = {
    ("legacy", "elicit"): ("test_elicitation", {"message": "Who are you?"}, "Who are you?"),
    ("legacy", "sample"): ("test_sampling", {"prompt": "What is six times seven?"}, "What is six times seven?"),
    ("modern", "elicit"): ("test_input_required_result_elicitation", {}, "What is your name?"),
    ("modern", "sample"): ("test_input_required_result_sampling", {}, "What is the capital of France?"),
}
PAIRS = [(client, upstream) for client in ("legacy", "modern") for upstream in ("legacy", "modern")]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """One gateway serving the legacy-pinned fixture at :data:`LEGACY_UP` and the modern one at :data:`MODERN_UP`."""
    docs = (fixture_document("era-pairs-legacy", LEGACY_UP, era="legacy"),
            fixture_document("era-pairs-modern", MODERN_UP, era=MODERN))
    with Procs(tmp_path_factory.mktemp("era-pairs")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        yield run_gateway(procs, url, revision=seed(url, *docs), env={"MCPGW_STATE_TTL": str(TTL)})


@pytest.mark.parametrize("kind", ["elicit", "sample"])
@pytest.mark.parametrize("client_era, upstream_era", PAIRS,
                         ids=[f"{client}-client-{upstream}-upstream" for client, upstream in PAIRS])
def test_a_call_that_needs_input_completes_with_the_clients_answer(gw, client_era, upstream_era, kind):
    from mcp import Client, types

    tool, arguments, question = TOOLS[upstream_era, kind]
    answer = f"{kind}ed-by-the-{client_era}-client-via-the-{upstream_era}-upstream"
    asked: list[tuple[str, str]] = []

    async def elicit(context, params):
        asked.append(("elicitation/create", params.message))
        # Every field the form asks for (username/email, or name) gets the answer.
        return types.ElicitResult(action="accept", content={field: answer for field in
                                                            params.requested_schema["properties"]})

    async def sample(context, params):
        asked.append(("sampling/createMessage", params.messages[0].content.text))
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text=answer))

    async def main():
        async with Client(gw.mcp_url(PREFIXES[upstream_era]), mode=MODES[client_era], elicitation_callback=elicit,
                          sampling_callback=sample) as client:
            return await client.call_tool(tool, arguments)

    result = asyncio.run(main())
    assert not result.is_error, result
    assert answer in result.content[0].text, result
    method = "elicitation/create" if kind == "elicit" else "sampling/createMessage"
    assert asked == [(method, question)]
    # The pair is the one named: the upstream was classified in the era it is pinned to.
    status = upstream_status(gw, upstream_era)
    assert status["era"] == upstream_era, status


def upstream_status(gw, upstream_era: str) -> dict:
    """The /readyz entry of the fixture upstream pinned to ``upstream_era``."""
    return next(u for u in gw.readyz()["upstreams"] if u["document"] == f"default/era-pairs-{upstream_era}")


def round_one(gw, upstream_era: str) -> tuple[dict, str, str, dict]:
    """A modern client's first ``tools/call`` of the eliciting tool.

    Returns the call, the input key, the sealed state and an ``inputResponses`` accepting the form with
    ``Ada`` in every field it asks for.
    """
    tool, arguments, question = TOOLS[upstream_era, "elicit"]
    call = {"name": tool, "arguments": arguments}
    resp = post(gw, "tools/call", call, prefix=PREFIXES[upstream_era])
    assert resp.status_code == 200, resp.text
    result = result_of(resp)["result"]
    assert result["resultType"] == "input_required" and result["requestState"], result
    (key, request), = result["inputRequests"].items()
    assert request["method"] == "elicitation/create" and request["params"]["message"] == question, request
    fields = request["params"]["requestedSchema"]["properties"]
    responses = {key: {"action": "accept", "content": dict.fromkeys(fields, "Ada")}}
    return call, key, result["requestState"], responses


@pytest.mark.parametrize("upstream_era", ["legacy", "modern"], ids=["held", "relayed"])
def test_a_tampered_state_is_refused_and_the_genuine_one_still_completes(gw, upstream_era):
    prefix = PREFIXES[upstream_era]
    call, _, state, responses = round_one(gw, upstream_era)
    resp = post(gw, "tools/call", {**call, "inputResponses": responses, "requestState": state + "-TAMPERED"},
                msg_id=7, prefix=prefix)
    assert resp.status_code == 400, resp.text
    body = resp.json()
    assert body["id"] == 7 and body["error"]["code"] == -32602, body
    assert body["error"]["message"].startswith("requestState refused: ") and "altered" in body["error"]["message"]
    # Nothing reached the upstream (nor the held call): the genuine state still completes the call.
    resp = post(gw, "tools/call", {**call, "inputResponses": responses, "requestState": state}, msg_id=8,
                prefix=prefix)
    done = result_of(resp)["result"]
    assert resp.status_code == 200 and done["resultType"] == "complete", resp.text
    assert not done.get("isError") and "Ada" in done["content"][0]["text"], done


@pytest.mark.parametrize("upstream_era", ["legacy", "modern"], ids=["held", "relayed"])
def test_an_expired_state_is_refused(gw, upstream_era):
    prefix = PREFIXES[upstream_era]
    call, key, state, _ = round_one(gw, upstream_era)
    # Retry without the answer until the state expires: while valid, the same question comes back.
    accepted: list[dict] = []

    def refused():
        resp = post(gw, "tools/call", {**call, "inputResponses": {}, "requestState": state}, prefix=prefix)
        if resp.status_code == 200:
            accepted.append(result_of(resp)["result"])
            return None
        return resp.status_code, resp.json()  # (a Response of an error status is falsy)

    status, body = wait_for(refused, timeout=TTL + 10, interval=0.25, what="the requestState to expire")
    assert accepted and all(r["resultType"] == "input_required" and key in r["inputRequests"] for r in accepted), \
        accepted
    assert status == 400, body
    error = body["error"]
    assert error["code"] == -32602 and error["message"].startswith("requestState refused: it has expired"), error
