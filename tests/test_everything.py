"""``@modelcontextprotocol/server-everything`` behind the gateway as three routers (stdio, SSE, Streamable HTTP
upstreams), driven by the official ``mcp`` client and the MCP Inspector CLI through both gateway transports.

``mcp-server-everything stdio|sse|streamableHttp`` picks the transport; the HTTP ones listen on ``$PORT``
(``/sse`` + ``/message``, or ``/mcp``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

import pytest
import requests
from mcp import Client
from mcp.client.sse import sse_client

from tests.fixtures_gateway import GatewayProc, node_tool, path_with_node, run_gateway, seed
from tests.helpers import Procs, free_port, wait_for

pytestmark = pytest.mark.node

ROUTERS = {"stdio": "/gateway/ev-stdio", "sse": "/gateway/ev-sse", "streamable-http": "/gateway/ev-http"}


def _listening(url: str) -> bool:
    try:
        requests.get(url, timeout=1, stream=True).close()
        return True
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def everything(tmp_path_factory):
    """server-everything over SSE and Streamable HTTP, and a gateway with one router per upstream type."""
    exe = node_tool("mcp-server-everything")
    node_tool("node")
    env = {"PATH": path_with_node()}
    with Procs(tmp_path_factory.mktemp("everything")) as procs:
        sse_port, http_port = free_port(), free_port()
        procs.start([exe, "sse"], env={**env, "PORT": str(sse_port)}, name="everything-sse")
        procs.start([exe, "streamableHttp"], env={**env, "PORT": str(http_port)}, name="everything-http")
        wait_for(lambda: _listening(f"http://127.0.0.1:{http_port}/") and
                 _listening(f"http://127.0.0.1:{sse_port}/"), timeout=30, what="server-everything")
        servers = [{"name": "ev-stdio", "type": "stdio", "command": exe, "args": ["stdio"], "timeout": 20},
                   {"name": "ev-sse", "type": "sse", "url": f"http://127.0.0.1:{sse_port}/sse", "timeout": 20},
                   {"name": "ev-http", "type": "streamable-http", "url": f"http://127.0.0.1:{http_port}/mcp",
                    "timeout": 20}]
        doc = {"name": "everything", "tenant": "default", "mcpServers": servers,
               "routers": [{"prefix": ROUTERS[s["type"]], "server": s["name"]} for s in servers]}
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        gw = run_gateway(procs, url, env=env, revision=seed(url, doc))
        try:
            wait_for(lambda: all(u["state"] == "ready" for u in gw.readyz()["upstreams"]) and
                     len(gw.readyz()["upstreams"]) == 3, timeout=40, what="all three upstreams ready")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{gw.proc.output()[-3000:]}") from None
        yield gw


def _client(gw: GatewayProc, kind: str, transport: str) -> Client:
    prefix = ROUTERS[kind]
    return Client(gw.mcp_url(prefix)) if transport == "http" else Client(sse_client(gw.sse_url(prefix)))


def _calls_in_flight(gw: GatewayProc, kind: str) -> int:
    server = "ev-" + {"streamable-http": "http"}.get(kind, kind)
    return next(u for u in gw.readyz()["upstreams"] if u["server"] == server)["calls"]


@pytest.mark.parametrize("transport", ["http", "sse"])
@pytest.mark.parametrize("kind", list(ROUTERS))
def test_official_client_tools_prompts_resources_progress_cancel(everything, kind, transport):
    gw = everything

    async def main():
        async with _client(gw, kind, transport) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            assert {"echo", "get-sum", "trigger-long-running-operation"} <= names, names
            echoed = await client.call_tool("echo", {"message": f"{kind} via {transport}"})
            assert echoed.content[0].text == f"Echo: {kind} via {transport}"
            summed = await client.call_tool("get-sum", {"a": 2, "b": 3})
            assert "5" in summed.content[0].text

            prompts = {p.name for p in (await client.list_prompts()).prompts}
            assert "simple-prompt" in prompts, prompts
            prompt = await client.get_prompt("simple-prompt", {})
            assert prompt.messages and prompt.messages[0].content.text

            resources = (await client.list_resources()).resources
            assert resources, "no resources listed"
            read = await client.read_resource(resources[0].uri)
            assert read.contents and str(read.contents[0].uri) == str(resources[0].uri)

            progress: list[float] = []

            async def on_progress(value, total, message):
                progress.append(value)

            done = await client.call_tool("trigger-long-running-operation", {"duration": 0.3, "steps": 3},
                                          progress_callback=on_progress)
            assert "Long running operation completed" in done.content[0].text
            assert progress == [1, 2, 3]

            # Abandoning a call makes the client send notifications/cancelled; the gateway forwards it and
            # stops waiting for the upstream at once (without it the call would hold its slot for 15 s).
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(client.call_tool("trigger-long-running-operation",
                                                        {"duration": 15, "steps": 15}), 1.5)
            await asyncio.to_thread(wait_for, lambda: _calls_in_flight(gw, kind) == 0, timeout=8,
                                    what="the cancelled call to end upstream")
            again = await client.call_tool("echo", {"message": "after cancel"})
            assert again.content[0].text == "Echo: after cancel"

    asyncio.run(main())


def inspector(url: str, transport: str, *args: str) -> subprocess.CompletedProcess:
    exe = node_tool("mcp-inspector")
    return subprocess.run([exe, "--cli", url, "--transport", transport, *args, "--format", "json"],
                          capture_output=True, text=True, timeout=90, env={**os.environ, "PATH": path_with_node()})


@pytest.mark.parametrize("transport", ["http", "sse"])
@pytest.mark.parametrize("kind", list(ROUTERS))
def test_inspector_cli_tools_prompts_resources(everything, kind, transport):
    gw = everything
    url = gw.mcp_url(ROUTERS[kind]) if transport == "http" else gw.sse_url(ROUTERS[kind])
    called = inspector(url, transport, "--method", "tools/call", "--tool-name", "echo",
                       "--tool-args-json", json.dumps({"message": "inspected"}))
    assert called.returncode == 0, called.stderr + called.stdout
    assert "Echo: inspected" in called.stdout
    prompts = inspector(url, transport, "--method", "prompts/list")
    assert prompts.returncode == 0, prompts.stderr + prompts.stdout
    data = json.loads(prompts.stdout)
    assert "simple-prompt" in [p["name"] for p in data.get("result", data)["prompts"]]
    resources = inspector(url, transport, "--method", "resources/list")
    assert resources.returncode == 0, resources.stderr + resources.stdout
    data = json.loads(resources.stdout)
    assert data.get("result", data)["resources"]
    if kind == "stdio" and transport == "http":
        listed = inspector(url, transport, "--method", "tools/list")
        assert listed.returncode == 0, listed.stderr + listed.stdout
        data = json.loads(listed.stdout)
        assert "trigger-long-running-operation" in [t["name"] for t in data.get("result", data)["tools"]]
