"""The official ``mcp`` client (2.3.0) against a real gateway, over Streamable HTTP and HTTP+SSE."""

from __future__ import annotations

import asyncio
import time

import pytest
from mcp import Client
from mcp.client.sse import sse_client


def _client(gw, transport):
    if transport == "http":
        return Client(gw.mcp_url())
    return Client(sse_client(gw.sse_url()))


async def _session_checks(client):
    tools = (await client.list_tools()).tools
    names = [t.name for t in tools]
    assert names[:3] == ["list_users", "get_user", "create_user"]
    get_user = next(t for t in tools if t.name == "get_user")
    assert get_user.input_schema["required"] == ["email"]

    ok = await client.call_tool("get_user", {"email": "grace@example.com"})
    assert not ok.is_error and "Grace Hopper" in ok.content[0].text

    bad = await client.call_tool("get_user", {})
    assert bad.is_error and "email" in bad.content[0].text

    failed = await client.call_tool("get_user", {"email": "nobody@example.com"})
    assert failed.is_error

    from mcp.shared.exceptions import MCPError

    with pytest.raises(MCPError) as exc:
        await client.call_tool("no_such_tool", {})
    assert exc.value.code == -32602


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_official_client(shared_gateway, transport):
    async def main():
        started = time.monotonic()
        async with _client(shared_gateway, transport) as client:
            # the modern probe must not cost the 10 s client timeout
            assert time.monotonic() - started < 5
            # P/mcp is dual-era: auto mode settles on 2026-07-28 there; SSE stays legacy
            expected = ("2026-07-28",) if transport == "http" else ("2025-11-25", "2024-11-05")
            assert client.protocol_version in expected
            await _session_checks(client)

    asyncio.run(main())


# A 1x1 PNG: the avatar round trip must come back as image content.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_every_demo_tool(shared_gateway, transport):
    email = f"e2e-{transport}@example.com"

    async def call(client, name, args):
        result = await client.call_tool(name, args)
        return result, "\n".join(getattr(c, "text", "") for c in result.content)

    async def main():
        async with _client(shared_gateway, transport) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert names == {"list_users", "get_user", "create_user", "update_preferences", "delete_user",
                             "upload_avatar", "get_avatar", "slow_call", "http_status", "echo_request"}

            result, text = await call(client, "list_users", {"tag": ["math"]})
            assert not result.is_error and "Ada Lovelace" in text and "Grace Hopper" not in text

            result, text = await call(client, "create_user", {"email": email, "name": "E2E", "tags": ["t"]})
            assert not result.is_error, text

            result, _ = await call(client, "get_user", {"email": email})
            assert not result.is_error and result.structured_content["name"] == "E2E"

            result, text = await call(client, "update_preferences", {"email": email, "preferences": {"theme": "dark"}})
            assert not result.is_error and "dark" in text

            avatar = {"name": "a.png", "content": PNG, "contentType": "image/png"}
            result, text = await call(client, "upload_avatar", {"email": email, "file": avatar})
            assert not result.is_error, text
            result = await client.call_tool("get_avatar", {"email": email})
            assert not result.is_error
            assert result.content[0].type == "image" and result.content[0].mime_type == "image/png"

            result, text = await call(client, "slow_call", {"seconds": 0.05})
            assert not result.is_error, text

            result, text = await call(client, "http_status", {"code": 503})
            assert result.is_error and "503" in text

            result, text = await call(client, "echo_request", {"X-Request-Tag": "tag-1", "note": "hello"})
            assert not result.is_error and "tag-1" in text and "hello" in text

            result, text = await call(client, "delete_user", {"email": email})
            assert not result.is_error, text
            result, _ = await call(client, "get_user", {"email": email})
            assert result.is_error

    asyncio.run(main())


def test_official_client_prompts(shared_gateway):
    async def main():
        async with Client(shared_gateway.mcp_url()) as client:
            prompts = (await client.list_prompts()).prompts
            assert [p.name for p in prompts] == ["onboard_user"]
            prompt = prompts[0]
            args = {a.name: "x" for a in prompt.arguments or []}
            result = await client.get_prompt(prompt.name, args)
            assert result.messages

    asyncio.run(main())


def test_upstream_mcp_server_through_the_gateway(tmp_path, start_gateway):
    """Progress, sampling and upstream list_changed, through the gateway to a stdio upstream (the conformance
    fixture server), with the official client."""
    import json
    import sys

    import requests
    from mcp import types

    from tests.fixtures_gateway import SseStream, migrated_store
    from tests.helpers import ROOT

    url = f"sqlite:///{tmp_path / 'up.db'}"
    store = migrated_store(url)
    store.save_document({"name": "up", "tenant": "default", "routers": [{"prefix": "/up", "server": "fixture"}],
                         "mcpServers": [{"name": "fixture", "type": "stdio", "command": sys.executable,
                                         "args": [str(ROOT / "tests/fixtures/conformance_server.py")]}]})
    gw = start_gateway(url)
    gw.wait_revision(store.revision())
    mcp_url = gw.mcp_url("/up")
    sampled = []

    async def sampling(context, params):
        sampled.append(params.messages[0].content.text)
        return types.CreateMessageResult(role="assistant", model="test",
                                         content=types.TextContent(type="text", text="sampled answer"))

    async def main():
        progress = []

        async def on_progress(value, total, message):
            progress.append(value)

        # Progress streams and server→client requests are legacy-session features here (not yet modern).
        async with Client(mcp_url, sampling_callback=sampling, mode="legacy") as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert "test_tool_with_progress" in names and "test_sampling" in names
            done = await client.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
            assert done.content[0].text == "Progress tool completed"
            assert progress == [0, 50, 100]
            answer = await client.call_tool("test_sampling", {"prompt": "hello upstream"})
            assert not answer.is_error and "sampled answer" in answer.content[0].text
            assert sampled == ["hello upstream"]

    asyncio.run(main())

    # an upstream's own tools/list_changed reaches the gateway's sessions and changes tools/list
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = requests.post(mcp_url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers=headers, timeout=10)
    headers["Mcp-Session-Id"] = init.headers["Mcp-Session-Id"]
    stream = SseStream(mcp_url, headers={"Mcp-Session-Id": headers["Mcp-Session-Id"]})
    try:
        added = requests.post(mcp_url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                             "params": {"name": "add_tool", "arguments": {"name": "fresh_tool"}}},
                              headers=headers, timeout=10)
        assert added.status_code == 200
        _, data = stream.next(timeout=15)
        assert json.loads(data)["method"] == "notifications/tools/list_changed"
        listed = requests.post(mcp_url, json={"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, headers=headers,
                               timeout=10).json()["result"]["tools"]
        assert "fresh_tool" in [t["name"] for t in listed]
    finally:
        stream.close()
