"""McpClient against real servers: the conformance fixture (stdio, Streamable HTTP, SSE) and server-everything."""

from __future__ import annotations

import os
import shutil
import time

import pytest
import requests

from mcpgw_sdk.client import McpClient, McpConnectionError, McpError, McpTimeout
from tests.fixtures_gateway import FIXTURE, listening, start_fixture
from tests.helpers import Proc, free_port, gone, python, wait_for

CONFORMANCE_TOOLS = {"test_simple_text", "test_image_content", "test_audio_content", "test_embedded_resource",
                     "test_multiple_content_types", "test_tool_with_logging", "test_tool_with_progress",
                     "test_error_handling", "test_sampling", "test_elicitation"}


def stdio_client(**kwargs) -> McpClient:
    return McpClient(python(), transport="stdio", args=[FIXTURE], mode="legacy", **kwargs)


def test_stdio_tools_prompts_resources():
    notes: list[dict] = []
    with stdio_client(on_notification=notes.append) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info["name"] == "mcpgw-conformance-fixture"
        assert client.pid and client.session_id is None
        assert CONFORMANCE_TOOLS <= {t["name"] for t in client.list_tools()}
        assert client.call_tool("echo", {"text": "héllo"})["content"] == [{"type": "text", "text": "héllo"}]
        image = client.call_tool("test_image_content")["content"][0]
        assert image["type"] == "image" and image["mimeType"] == "image/png"
        error = client.call_tool("test_error_handling")
        assert error["isError"] is True and "intentionally" in error["content"][0]["text"]
        assert "test_simple_prompt" in {p["name"] for p in client.list_prompts()}
        prompt = client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        assert prompt["messages"][0]["content"]["text"] == "Prompt with arguments: arg1='a', arg2='b'"
        assert "test://static-text" in {r["uri"] for r in client.list_resources()}
        assert client.list_resource_templates()[0]["uriTemplate"] == "test://template/{id}/data"
        text = client.read_resource("test://static-text")["contents"][0]
        assert text["text"] == "This is the content of the static text resource."
        assert client.read_resource("test://static-binary")["contents"][0]["blob"].startswith("iVBOR")
        completion = client.complete({"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                                     {"name": "arg1", "value": "par"})
        assert completion["completion"]["values"] == ["paris", "park", "party"]
        assert client.ping() == {}
        assert client.set_logging_level("debug") == {}
        client.subscribe("test://watched-resource")
        wait_for(lambda: any(n["method"] == "notifications/resources/updated" for n in notes),
                 what="resources/updated")
        with pytest.raises(McpError) as info:
            client.request("no/such/method")
        assert info.value.code == -32601
        pid = client.pid
    assert client.closed
    wait_for(lambda: gone(pid), timeout=10, what="the stdio server to exit")


def test_stdio_progress_and_logging():
    notes: list[dict] = []
    with stdio_client(on_notification=notes.append) as client:
        progress: list[dict] = []
        result = client.call_tool("test_tool_with_progress", progress_token="p-1", on_message=progress.append)
        assert result["content"][0]["text"] == "Progress tool completed"
        assert [m["params"]["progress"] for m in progress] == [0, 50, 100]
        assert {m["params"]["progressToken"] for m in progress} == {"p-1"}
        client.call_tool("test_tool_with_logging")
        wait_for(lambda: len([n for n in notes if n["method"] == "notifications/message"]) >= 3, what="3 logs")
        assert [n["params"]["data"] for n in notes if n["method"] == "notifications/message"][:3] == [
            "Tool execution started", "Tool processing data", "Tool execution completed"]


def test_stdio_timeout_then_next_call_works():
    with stdio_client(timeout=10) as client:
        started = time.monotonic()
        with pytest.raises(McpTimeout) as info:
            client.call_tool("slow", {"seconds": 5}, timeout=0.3)
        assert isinstance(info.value, TimeoutError)
        assert time.monotonic() - started < 2
        assert client.call_tool("echo", {"text": "still here"})["content"][0]["text"] == "still here"


def test_stdio_process_exit_fails_waiting_call():
    closed: list[BaseException] = []
    client = stdio_client(on_close=closed.append).connect()
    try:
        pid = int(client.call_tool("pid")["content"][0]["text"])
        assert pid == client.pid
        os.kill(pid, 9)
        with pytest.raises(McpConnectionError):
            client.call_tool("slow", {"seconds": 5}, timeout=5)
        wait_for(lambda: closed, what="on_close")
        assert client.closed and "exited" in str(client.close_reason)
    finally:
        client.close()


def test_stdio_missing_command_is_a_connection_error():
    with pytest.raises(McpConnectionError, match="cannot start"):
        McpClient("/nonexistent/mcp-server", transport="stdio").connect()


def test_streamable_http_session_progress_and_delete(http_url):
    client = McpClient(http_url, mode="legacy").connect()
    try:
        assert client.protocol_version == "2025-11-25"
        session = client.session_id
        assert session
        assert CONFORMANCE_TOOLS <= {t["name"] for t in client.list_tools()}
        progress: list[dict] = []
        client.call_tool("test_tool_with_progress", progress_token=7, on_message=progress.append)
        assert [m["params"]["progress"] for m in progress] == [0, 50, 100]
        logs: list[dict] = []
        client.call_tool("test_tool_with_logging", on_message=logs.append)
        assert [m["params"]["data"] for m in logs] == ["Tool execution started", "Tool processing data",
                                                       "Tool execution completed"]
        mixed = client.call_tool("test_multiple_content_types")["content"]
        assert [c["type"] for c in mixed] == ["text", "image", "resource"]
        assert client.call_tool("header_value", {"name": "mcp-session-id"})["content"][0]["text"] == session
    finally:
        client.close()
    # The session was deleted on close: the server no longer knows it.
    resp = requests.post(http_url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=5,
                         headers={"Mcp-Session-Id": session, "Accept": "application/json, text/event-stream"})
    assert resp.status_code == 404


def test_streamable_http_headers_timeout_and_concurrency(http_url):
    with McpClient(http_url, headers={"X-Api-Key": "k-123"}, timeout=10) as client:
        assert client.call_tool("header_value", {"name": "x-api-key"})["content"][0]["text"] == "k-123"
        with pytest.raises(McpTimeout):
            client.call_tool("slow", {"seconds": 3}, timeout=0.3)
        # Calls run concurrently on one session: a slow call does not hold up a fast one.
        import threading

        slow: dict = {}
        thread = threading.Thread(target=lambda: slow.update(client.call_tool("slow", {"seconds": 3})))
        thread.start()
        started = time.monotonic()
        assert client.call_tool("echo", {"text": "fast"})["content"][0]["text"] == "fast"
        assert time.monotonic() - started < 2.5  # well before the slow call ends (margin for a busy machine)
        thread.join(10)
        assert slow["content"][0]["text"] == "slept 3.0"


def test_streamable_http_sampling_and_elicitation_callbacks(http_url):
    asked: list[dict] = []

    def answer(msg):
        asked.append(msg)
        if msg["method"] == "sampling/createMessage":
            return {"role": "assistant", "model": "test", "content": {"type": "text", "text": "forty-two"}}
        return {"action": "accept", "content": {"username": "ann", "email": "ann@example.com"}}

    with McpClient(http_url, mode="legacy", on_request=answer, client_capabilities={"sampling": {}, "elicitation": {}}) as client:
        result = client.call_tool("test_sampling", {"prompt": "meaning?"})
        assert result["content"][0]["text"] == "LLM response: forty-two"
        assert asked[0]["params"]["messages"][0]["content"]["text"] == "meaning?"
        result = client.call_tool("test_elicitation", {"message": "who?"})
        assert '"username": "ann"' in result["content"][0]["text"]


def test_http_connection_refused():
    with pytest.raises(McpConnectionError):
        McpClient(f"http://127.0.0.1:{free_port()}/mcp", timeout=5).connect()


def test_sse_transport(sse_url):
    with McpClient(sse_url, transport="sse") as client:
        assert client.protocol_version in ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
        assert client.call_tool("echo", {"text": "over sse"})["content"][0]["text"] == "over sse"
        progress: list[dict] = []
        client.call_tool("test_tool_with_progress", progress_token="s", on_message=progress.append)
        assert [m["params"]["progress"] for m in progress] == [0, 50, 100]
        assert client.read_resource("test://template/9/data")["contents"][0]["text"].startswith('{"id": "9"')


def test_bad_transport_name():
    with pytest.raises(ValueError, match="transport"):
        McpClient("x", transport="websocket")


# ---------------------------------------------------------------------------------------------- server-everything


def _everything() -> str:
    path = shutil.which("mcp-server-everything")
    node = shutil.which("node")
    if not path or not node:
        if os.environ.get("CI"):
            pytest.fail("mcp-server-everything (and Node 22) must be on PATH in CI")
        pytest.skip("mcp-server-everything or node not on PATH (make node-tools)")
    return path


@pytest.mark.node
def test_everything_stdio():
    with McpClient(_everything(), transport="stdio", args=["stdio"], timeout=30) as client:
        names = {t["name"] for t in client.list_tools()}
        assert {"echo", "get-sum", "trigger-long-running-operation"} <= names
        assert client.call_tool("echo", {"message": "hi"})["content"][0]["text"] == "Echo: hi"
        assert "3" in client.call_tool("get-sum", {"a": 1, "b": 2})["content"][0]["text"]
        progress: list[dict] = []
        client.call_tool("trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_token="e",
                         on_message=progress.append)
        assert [m["params"]["progress"] for m in progress] == [1, 2, 3]
        assert "simple-prompt" in {p["name"] for p in client.list_prompts()}
        assert client.list_resources()


@pytest.mark.node
def test_everything_streamable_http(tmp_path):
    path = _everything()
    port = free_port()
    proc = Proc([path, "streamableHttp"], env={"PORT": str(port)}, log=tmp_path / "everything.log")
    try:
        wait_for(lambda: listening(port), timeout=30, what="server-everything")
        with McpClient(f"http://127.0.0.1:{port}/mcp") as client:
            assert client.session_id
            assert client.call_tool("echo", {"message": "http"})["content"][0]["text"] == "Echo: http"
            with pytest.raises(McpTimeout):
                client.call_tool("trigger-long-running-operation", {"duration": 3, "steps": 3}, timeout=0.3)
            assert client.call_tool("echo", {"message": "after"})["content"][0]["text"] == "Echo: after"
    finally:
        proc.stop()


@pytest.mark.node
def test_fixture_passes_the_official_conformance_suite(http_url, tmp_path):
    """The fixture server alone passes the suite's server scenarios (the gateway is tested through it elsewhere)."""
    import re
    import subprocess

    tool = shutil.which("conformance")
    if not tool or not shutil.which("node"):
        if os.environ.get("CI"):
            pytest.fail("the conformance CLI (and Node 22) must be on PATH in CI")
        pytest.skip("conformance or node not on PATH (make node-tools)")
    url = http_url.replace("127.0.0.1", "localhost")
    done = subprocess.run([tool, "server", "--url", url, "--spec-version", "2025-11-25", "-o", str(tmp_path)],
                          capture_output=True, text=True, timeout=240)
    total = re.search(r"Total: (\d+) passed, (\d+) failed", done.stdout)
    assert done.returncode == 0 and total, done.stdout[-3000:] + done.stderr[-2000:]
    assert int(total.group(1)) >= 40 and total.group(2) == "0", done.stdout[-3000:]


def test_streamable_http_resumes_a_closed_stream(tmp_path):
    """The server closes the call's stream mid-call (SEP-1699); the client resumes it with Last-Event-ID."""
    proc, url = start_fixture(tmp_path, "streamable-http", "--resumable")
    try:
        with McpClient(url, timeout=15, mode="legacy") as client:
            result = client.call_tool("test_reconnection")
            assert result["content"][0]["text"].startswith("Reconnection test completed successfully")
            assert client.call_tool("echo", {"text": "next"})["content"][0]["text"] == "next"
    finally:
        proc.stop()
