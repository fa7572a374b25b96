"""The MCP Inspector CLI (Node 22) against a real gateway over both transports."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.fixtures_gateway import node_tool, path_with_node

pytestmark = pytest.mark.node


def inspector(*args, timeout=60):
    exe = node_tool("mcp-inspector")
    env = {**os.environ, "PATH": path_with_node()}
    return subprocess.run([exe, "--cli", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_inspector_lists_and_calls_tools(shared_gateway, transport):
    url = shared_gateway.mcp_url() if transport == "http" else shared_gateway.sse_url()
    listed = inspector(url, "--transport", transport, "--method", "tools/list", "--format", "json")
    assert listed.returncode == 0, listed.stderr + listed.stdout
    data = json.loads(listed.stdout)
    names = [t["name"] for t in data.get("result", data)["tools"]]
    assert "get_user" in names

    called = inspector(url, "--transport", transport, "--method", "tools/call", "--tool-name", "get_user",
                       "--tool-args-json", json.dumps({"email": "ada@example.com"}), "--format", "json")
    assert called.returncode == 0, called.stderr + called.stdout
    assert "Ada Lovelace" in called.stdout

    failed = inspector(url, "--transport", transport, "--method", "tools/call", "--tool-name", "get_user",
                       "--tool-args-json", json.dumps({"email": "nobody@example.com"}), "--format", "json")
    assert failed.returncode == 5, failed.stderr + failed.stdout
