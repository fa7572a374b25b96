"""Modern upstream → legacy client: the gateway answers an upstream's ``input_required`` by asking the client.

The official Python client (``mcp`` 2.3.0, ``mode="legacy"``) calls the conformance fixture (Streamable
HTTP) through the gateway. Pinned modern (``era: 2026-07-28``), the upstream is called statelessly and its
``test_input_required_result_*`` tools answer ``input_required``: the gateway sends ``elicitation/create``
or ``sampling/createMessage`` to the client over its session and retries the upstream with the answers
(no upstream session is opened). A client that did not declare the capability gets a tool error naming it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fixtures_gateway import run_gateway, seed, start_fixture
from tests.helpers import Procs, wait_for

PINNED = "/gateway/mrtr-legacy"  # the fixture with era 2026-07-28: input_required bridged
AUTO = "/gateway/mrtr-legacy-auto"  # the fixture with era auto: callbacks go to a legacy session


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mrtr-legacy")
    proc, url = start_fixture(tmp, "streamable-http")
    try:
        with Procs(tmp) as procs:
            upstream = {"type": "streamable-http", "url": url, "toolPrefix": "", "timeout": 20}
            doc = {"name": "mrtr-legacy", "tenant": "default",
                   "routers": [{"prefix": PINNED, "server": "fx"}, {"prefix": AUTO, "server": "fx_auto"}],
                   "mcpServers": [{"name": "fx", **upstream, "era": "2026-07-28"},
                                  {"name": "fx_auto", **upstream, "era": "auto"}]}
            db = f"sqlite:///{procs.log_dir / 'gw.db'}"
            gateway = run_gateway(procs, db, revision=seed(db, doc))
            wait_for(lambda: all(status(gateway, n)["state"] == "ready" for n in ("fx", "fx_auto")), timeout=30,
                     what="the upstreams ready")
            yield gateway
    finally:
        proc.stop()


def status(gw, name: str) -> dict:
    return next(u for u in gw.readyz()["upstreams"] if u["server"] == name)


def run(gw, prefix: str, calls, **callbacks):
    """Run ``calls(client)`` in a legacy session of the official client with ``callbacks``."""
    from mcp import Client

    async def main():
        async with Client(gw.mcp_url(prefix), mode="legacy", **callbacks) as client:
            return await calls(client)

    return asyncio.run(main())


def test_elicitation_is_asked_of_the_legacy_client(gw):
    from mcp import types

    asked: list[str] = []

    async def elicit(context, params):
        asked.append(params.message)
        if "color" in params.message:
            return types.ElicitResult(action="accept", content={"color": "green"})
        return types.ElicitResult(action="accept", content={"name": "Ada", "context": "maths"})

    async def calls(client):
        return (await client.call_tool("test_input_required_result_elicitation", {}),
                await client.call_tool("test_input_required_result_multi_round", {}),
                await client.get_prompt("test_input_required_result_prompt"))

    greeting, rounds, prompt = run(gw, PINNED, calls, elicitation_callback=elicit)
    assert not greeting.is_error and greeting.content[0].text == "Hello, Ada!", greeting
    # Two upstream rounds, the upstream's own requestState kept by the gateway in between.
    assert rounds.content[0].text == "Hello, Ada! Your favorite color is green.", rounds
    assert "maths" in prompt.messages[0].content.text, prompt
    assert asked == ["What is your name?", "Step 1: What is your name?", "Step 2: What is your favorite color?",
                     "What context should the prompt use?"]
    # Bridged over the stateless modern path: no legacy upstream session was opened for it.
    assert status(gw, "fx")["era"] == "modern" and status(gw, "fx")["upstream_session"] is False


def test_sampling_is_asked_of_the_legacy_client(gw):
    from mcp import types

    async def sample(context, params):
        assert params.messages[0].content.text == "What is the capital of France?"
        return types.CreateMessageResult(role="assistant", model="m", content=types.TextContent(type="text",
                                                                                                text="Paris"))

    async def calls(client):
        return await client.call_tool("test_input_required_result_sampling", {})

    result = run(gw, PINNED, calls, sampling_callback=sample)
    assert not result.is_error and result.content[0].text == "The sampled answer: Paris", result


@pytest.mark.parametrize("prefix", [PINNED, AUTO])
def test_a_client_without_the_capability_gets_a_tool_error(gw, prefix):
    from mcp import types

    async def elicit(context, params):  # elicitation only: the sampling tool still lacks its capability
        return types.ElicitResult(action="accept", content={"name": "x"})

    async def calls(client):
        return await client.call_tool("test_input_required_result_elicitation", {})

    result = run(gw, prefix, calls)
    assert result.is_error, result
    text = result.content[0].text
    assert "did not declare the elicitation capability" in text and "elicitation/create" in text, text
    if prefix == AUTO:
        return  # a client with callbacks is served on a legacy upstream session there (passthrough)

    async def sampling(client):
        return await client.call_tool("test_input_required_result_sampling", {})

    result = run(gw, prefix, sampling, elicitation_callback=elicit)
    assert result.is_error and "did not declare the sampling capability" in result.content[0].text, result


def test_a_prompt_without_the_capability_is_a_clear_error(gw):
    from mcp import MCPError

    async def calls(client):
        try:
            await client.get_prompt("test_input_required_result_prompt")
        except MCPError as exc:  # inside the session: outside it comes wrapped in an exception group
            return exc
        return None

    error = run(gw, PINNED, calls)
    assert error is not None and "did not declare the elicitation capability" in str(error), error


def test_the_bridge_is_bounded_and_reports_client_errors():
    from gateway_server.backends import CallContext
    from gateway_server.backends import upstream as up
    from mcpgw_sdk.client import McpError

    server = up.UpstreamServer(name="u", spec={"type": "streamable-http", "url": "http://127.0.0.1:9/mcp"},
                               start=False)
    asked = {"resultType": "input_required", "requestState": "s1",
             "inputRequests": {"k": {"method": "elicitation/create",
                                     "params": {"message": "?", "_meta": {"io.modelcontextprotocol/x": 1, "a": 2}}}}}
    seen: list = []

    def answer(method, params, timeout=None):
        seen.append((method, params))
        return {"action": "accept", "content": {"v": 1}}

    ctx = CallContext(protocol_version="2025-11-25", client_capabilities={"elicitation": {}}, request=answer)
    far = time.monotonic() + 30
    extra = server._ask_legacy(ctx, "t", asked, far, 0)
    assert extra == {"inputResponses": {"k": {"action": "accept", "content": {"v": 1}}}, "requestState": "s1"}
    assert seen == [("elicitation/create", {"message": "?", "_meta": {"a": 2}})]  # reserved _meta dropped
    with pytest.raises(up._NeedsInput, match="after 8 rounds"):
        server._ask_legacy(ctx, "t", asked, far, up.MAX_INPUT_ROUNDS)
    with pytest.raises(up._NeedsInput, match="no time left"):
        server._ask_legacy(ctx, "t", asked, 0.0, 0)

    def refuse(method, params, timeout=None):
        raise McpError(-1, "user closed the dialog")

    with pytest.raises(up._NeedsInput, match="the client answered elicitation/create with an error: user closed"):
        server._ask_legacy(CallContext(client_capabilities={"elicitation": {}}, request=refuse), "t", asked, far, 0)
    # Declared but unable to answer (no back channel) counts as not declared.
    with pytest.raises(up._NeedsInput, match="did not declare the elicitation capability"):
        server._ask_legacy(CallContext(client_capabilities={"elicitation": {}}), "t", asked, far, 0)
