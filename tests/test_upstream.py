"""UpstreamServer: upstream MCP servers of every type behind the Backend interface, against the real fixture."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from gateway_server.backends import CallContext, make_backend
from gateway_server.backends.upstream import UpstreamServer
from mcpgw_sdk.errors import ConfigError
from tests.fixtures_gateway import FIXTURE, listening, start_fixture
from tests.helpers import gone, python, wait_for


def stdio_spec(**extra) -> dict:
    return {"type": "stdio", "command": python(), "args": [FIXTURE], **extra}


@pytest.fixture
def servers():
    """UpstreamServers made with ``servers(name, spec)``; all closed at teardown.

    They connect at once (``policy: onStart``) unless the spec says otherwise: the model's default,
    ``onDemand``, would make each test's first use connect.
    """
    made: list[UpstreamServer] = []

    def make(name: str, spec: dict, **kwargs) -> UpstreamServer:
        server = make_backend("mcp", name=name, spec={"policy": "onStart", **spec}, document={"name": "doc"},
                              **kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def text(result: dict) -> str:
    return result["content"][0]["text"]


def test_stdio_on_start_lists_and_calls(servers):
    up = servers("fx", stdio_spec())
    wait_for(lambda: up.state == "ready", timeout=20, what="ready")
    names = [t["name"] for t in up.list_tools()]
    assert "test_simple_text" in names and "echo" in names
    assert text(up.call_tool("echo", {"text": "hi"}, CallContext())) == "hi"
    status = up.status()
    assert status["state"] == "ready" and status["pid"] and status["restarts"] == 0
    assert up.capabilities["tools"] == {"listChanged": True} and "prompts" in up.capabilities
    assert "test_simple_prompt" in {p["name"] for p in up.list_prompts()}
    assert up.get_prompt("test_simple_prompt", None, CallContext())["messages"]
    contents = up.read_resource("test://static-text", CallContext())["contents"]
    assert contents[0]["text"] == "This is the content of the static text resource."
    assert up.list_resource_templates()[0]["uriTemplate"] == "test://template/{id}/data"
    pid = status["pid"]
    up.close()
    assert up.state == "stopped"
    wait_for(lambda: gone(pid), timeout=10, what="the process to stop")


@pytest.mark.parametrize("kind", ["streamable-http", "sse"])
def test_http_types_list_and_call(servers, http_url, sse_url, kind):
    url = http_url if kind == "streamable-http" else sse_url
    up = servers("web", {"type": kind, "url": url, "headers": {"X-Token": "{{ config.token }}"},
                         "config": {"token": "t-1"}})
    assert "echo" in {t["name"] for t in up.list_tools()}
    assert text(up.call_tool("echo", {"text": kind}, CallContext())) == kind
    if kind == "streamable-http":
        assert text(up.call_tool("header_value", {"name": "x-token"}, CallContext())) == "t-1"


def test_allowed_and_denied_tools(servers):
    up = servers("f", stdio_spec(allowedTools=["echo", "slow", "pid"], deniedTools=["slow"]))
    assert sorted(t["name"] for t in up.list_tools()) == ["echo", "pid"]
    refused = up.call_tool("slow", {"seconds": 0}, CallContext())
    assert refused["isError"] and "not available" in text(refused)
    assert up.call_tool("test_simple_text", {}, CallContext())["isError"]


def test_policy_defaults_to_on_demand_as_validation_says():
    up = UpstreamServer(name="x", spec=stdio_spec(), start=False)
    assert up.policy == "onDemand" and up.era_mode == "legacy" and up.timeout == 30.0


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"mcpServers\[x\]\.type"):
        UpstreamServer(name="x", spec={"type": "websocket", "url": "ws://x"})
    with pytest.raises(ConfigError, match=r"mcpServers\[x\]\.command"):
        UpstreamServer(name="x", spec={"type": "stdio"})
    with pytest.raises(ConfigError, match=r"mcpServers\[x\]\.policy"):
        UpstreamServer(name="x", spec=stdio_spec(policy="always"))


def test_on_demand_connects_on_use_and_closes_when_idle(servers):
    up = servers("lazy", stdio_spec(policy="onDemand"))
    up.idle_timeout = 0.4
    assert up.state == "stopped" and up.status()["pid"] is None
    first = int(text(up.call_tool("pid", {}, CallContext())))
    assert up.state == "ready"
    assert int(text(up.call_tool("pid", {}, CallContext()))) == first  # one process, not one per call
    wait_for(lambda: up.state == "stopped", timeout=10, what="idle close")
    wait_for(lambda: gone(first), timeout=10, what="the idle process to stop")
    second = int(text(up.call_tool("pid", {}, CallContext())))
    assert second != first


def test_killed_process_mid_call_is_an_error_and_restarts(servers):
    up = servers("crashy", stdio_spec(timeout=20))
    wait_for(lambda: up.state == "ready", timeout=20, what="ready")
    pid = int(text(up.call_tool("pid", {}, CallContext())))
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(up.call_tool("slow", {"seconds": 15}, CallContext())))
    thread.start()
    wait_for(lambda: up._shared and up._shared.active, what="the call to be in flight")
    started = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    thread.join(10)
    assert time.monotonic() - started < 5
    assert result["isError"] and "connection lost" in text(result)
    after = up.call_tool("pid", {}, CallContext())
    assert not after.get("isError"), after
    assert int(text(after)) != pid
    assert up.status()["restarts"] == 1 and up.state == "ready"


def test_slow_upstream_times_out_without_blocking_others(servers):
    up = servers("slowpoke", stdio_spec(timeout=0.5))
    wait_for(lambda: up.state == "ready", timeout=20, what="ready")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(up.call_tool("slow", {"seconds": 5}, CallContext())))
    started = time.monotonic()
    thread.start()
    assert text(up.call_tool("echo", {"text": "meanwhile"}, CallContext())) == "meanwhile"
    thread.join(5)
    assert 0.4 < time.monotonic() - started < 2.5
    assert result["isError"] and "did not answer" in text(result)
    # A CallContext deadline shorter than the server's timeout wins.
    up.timeout = 30
    started = time.monotonic()
    late = up.call_tool("slow", {"seconds": 5}, CallContext(deadline=time.monotonic() + 0.3))
    assert late["isError"] and time.monotonic() - started < 2


def test_list_changed_fires_listeners(servers, http_url):
    up = servers("dyn", {"type": "streamable-http", "url": http_url})
    events: list[dict] = []
    up.add_listener(events.append)
    assert "fresh_tool" not in {t["name"] for t in up.list_tools()}
    # a change made before the upstream acknowledged the listen stream would go unseen
    wait_for(lambda: up.era != "modern" or up.lists_followed.is_set(), what="the list-changes stream")
    assert text(up.call_tool("add_tool", {"name": "fresh_tool"}, CallContext())) == "added fresh_tool"
    wait_for(lambda: events, what="tools_changed")
    assert events[0] == {"type": "tools_changed", "server": "dyn"}
    assert "fresh_tool" in {t["name"] for t in up.list_tools()}
    assert text(up.call_tool("fresh_tool", {}, CallContext())) == "fresh_tool called"


def test_progress_is_mapped_to_the_clients_token(servers):
    up = servers("prog", stdio_spec())
    sent: list[dict] = []
    ctx = CallContext(progress_token="client-token", notify=sent.append, request_id="9", session_id="s")
    result = up.call_tool("test_tool_with_progress", {}, ctx)
    assert not result.get("isError")
    progress = [m for m in sent if m["method"] == "notifications/progress"]
    assert [m["params"]["progress"] for m in progress] == [0, 50, 100]
    assert {m["params"]["progressToken"] for m in progress} == {"client-token"}
    # Logging during a call on the shared stdio session reaches the calling client.
    logs: list[dict] = []
    up.call_tool("test_tool_with_logging", {}, CallContext(notify=logs.append))
    wait_for(lambda: len(logs) >= 3, what="log notifications")


def test_cancel_maps_to_the_upstream_request(servers):
    up = servers("cancel", stdio_spec())
    ctx = CallContext(request_id=41, session_id="sess")
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(up.call_tool("slow", {"seconds": 10}, ctx)))
    thread.start()
    wait_for(lambda: (("sess", 41) in up._inflight), timeout=20, what="in flight")
    assert up.cancel(41, session_id="sess", reason="user gave up")
    thread.join(5)
    assert result["isError"] and "cancelled" in text(result)
    assert not up.cancel(41, session_id="sess")
    assert text(up.call_tool("echo", {"text": "ok"}, CallContext())) == "ok"


def test_env_template_from_request_headers(servers):
    up = servers("envy", stdio_spec(policy="onDemand", env={"WHO": "{{ config.org }}:{{ request.headers['x-user'] }}"},
                                    config={"org": "acme"}))
    ann = CallContext(headers={"x-user": "ann"})
    bob = CallContext(headers={"x-user": "bob"})
    assert text(up.call_tool("env_value", {"name": "WHO"}, ann)) == "acme:ann"
    assert text(up.call_tool("env_value", {"name": "WHO"}, bob)) == "acme:bob"
    assert text(up.call_tool("env_value", {"name": "WHO"}, ann)) == "acme:ann"
    assert up.status()["sessions"] == 2  # one upstream session per distinct rendering, reused


def test_sampling_is_forwarded_through_the_session_callback(servers, http_url):
    up = servers("llm", {"type": "streamable-http", "url": http_url})
    asked: list[tuple] = []

    def ask_client(method, params):
        asked.append((method, params))
        return {"role": "assistant", "model": "m", "content": {"type": "text", "text": "from the client"}}

    ctx = CallContext(session_id="down-1")
    ctx.request = ask_client
    ctx.client_capabilities = {"sampling": {}}
    result = up.call_tool("test_sampling", {"prompt": "hello?"}, ctx)
    assert text(result) == "LLM response: from the client"
    assert asked[0] == ("sampling/createMessage", asked[0][1]) and asked[0][1]["maxTokens"] == 100
    assert up.status()["sessions"] == 0  # routed on the shared session, by the call's own stream
    # A client that cannot answer gets the upstream's own "unsupported" answer, as an error result (the
    # fixture is dual-era: such a call goes out statelessly, where no server→client request can be sent).
    plain = up.call_tool("test_sampling", {"prompt": "x"}, CallContext(session_id="down-2"))
    assert plain["isError"] and "Sampling not supported" in text(plain)


def test_elicitation_is_forwarded_on_a_shared_stdio_session(servers):
    up = servers("ask", stdio_spec())
    ctx = CallContext(session_id="d")
    ctx.request = lambda method, params: {"action": "accept", "content": {"username": "u", "email": "e@x"}}
    result = up.call_tool("test_elicitation", {"message": "name?"}, ctx)
    assert not result.get("isError"), result
    assert text(result) == 'User response: action=accept, content={"username": "u", "email": "e@x"}'
    assert up.status()["sessions"] == 0


def test_subscribe_and_logging_use_the_sessions_own_upstream(servers):
    up = servers("subs", stdio_spec())
    sent: list[dict] = []
    ctx = CallContext(session_id="s-1", notify=sent.append)
    assert up.subscribe("test://watched-resource", ctx) == {}
    wait_for(lambda: any(m["method"] == "notifications/resources/updated" for m in sent), what="update")
    assert up.set_logging_level("debug", ctx) == {}
    assert up.status()["sessions"] == 1
    assert up.complete({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
                        "argument": {"name": "arg1", "value": "pa"}}, ctx)["completion"]["values"]
    up.session_closed("s-1")
    assert up.status()["sessions"] == 0


@pytest.mark.parametrize("era", ["legacy", "auto"])
def test_listen_streams_share_one_resource_subscription_holder(servers, http_url, era):
    up = servers(f"watch-{era}", {"type": "streamable-http", "url": http_url, "era": era})
    wait_for(lambda: up.state == "ready", timeout=20, what="ready")
    assert up.subscribable
    first: list[dict] = []
    second: list[dict] = []
    stop_first = up.watch_resources(["test://a"], first.append)
    stop_second = up.watch_resources(["test://a", "test://b"], second.append)
    # One holder: a legacy session of its own (not counted as a downstream session), or a modern listen stream.
    assert (up._holder is not None) == (era == "legacy") and (up._resource_listen is not None) == (era == "auto")
    assert up._subscribed == {"test://a", "test://b"} and up.status()["sessions"] == 0
    first.clear()
    second.clear()  # a legacy subscribe is answered with an update at once
    up.call_tool("touch_resource", {"uri": "test://a"}, CallContext())
    wait_for(lambda: first and second, timeout=5, what="the update to reach both watchers")
    assert first == second == [{"uri": "test://a"}]
    stop_first()
    assert up._subscribed == {"test://a", "test://b"}  # still watched by the second
    stop_second()
    assert up._subscribed == set() and up._holder is None and up._resource_listen is None
    up.call_tool("touch_resource", {"uri": "test://a"}, CallContext())
    time.sleep(0.3)
    assert first == second == [{"uri": "test://a"}]


def test_unreachable_http_upstream_fails_fast(servers):
    from tests.helpers import free_port

    up = servers("gone", {"type": "streamable-http", "url": f"http://127.0.0.1:{free_port()}/mcp", "timeout": 2})
    started = time.monotonic()
    result = up.call_tool("echo", {"text": "x"}, CallContext())
    assert result["isError"] and "unavailable" in text(result)
    assert time.monotonic() - started < 3
    assert up.state in ("failed", "connecting") and up.last_error
    assert up.list_tools() == []


def test_http_upstream_restarted_server_gets_a_new_session(servers, tmp_path):
    from tests.helpers import Proc

    proc, url = start_fixture(tmp_path, "streamable-http")
    port = url.split(":")[2].split("/")[0]
    # A legacy session (the fixture is dual-era: era "legacy" keeps it off the stateless 2026-07-28 path).
    up = servers("re", {"type": "streamable-http", "url": url, "policy": "onDemand", "timeout": 10, "era": "legacy"})
    try:
        assert text(up.call_tool("echo", {"text": "one"}, CallContext())) == "one"
        old_session = up._shared.client.session_id
        proc.stop(signal.SIGKILL)
        proc = Proc([python(), FIXTURE, "--transport", "streamable-http", "--port", port],
                    log=tmp_path / "fixture-again.log")
        wait_for(lambda: listening(int(port)), timeout=30, what="the restarted fixture")
        again = up.call_tool("echo", {"text": "two"}, CallContext())
        assert text(again) == "two", again
        assert up._shared.client.session_id != old_session
    finally:
        proc.stop()


def test_hanging_upstream_connect_is_bounded_by_the_call_timeout(servers):
    up = servers("mute", {"type": "stdio", "command": python(), "args": ["-c", "import time; time.sleep(60)"],
                          "policy": "onDemand", "timeout": 0.5})
    up.connect_timeout = 2
    started = time.monotonic()
    result = up.call_tool("echo", {"text": "x"}, CallContext())
    assert result["isError"] and "longer than the call may wait" in text(result)
    assert time.monotonic() - started < 1.5
    wait_for(lambda: up.state == "failed", timeout=10, what="the connect attempt to give up")
    assert "initialize" in up.last_error


def test_stdio_stderr_goes_to_the_log_line_by_line(servers, caplog):
    caplog.set_level("INFO", logger="mcpgw.upstream.chatty")
    up = servers("chatty", stdio_spec())
    wait_for(lambda: up.state == "ready", timeout=20, what="ready")
    # the fixture announces itself on stderr when it starts
    lines = wait_for(lambda: [r.getMessage() for r in caplog.records
                              if r.name == "mcpgw.upstream.chatty" and "serving stdio" in r.getMessage()],
                     timeout=10, what="the upstream's stderr in the log")
    assert lines[0].startswith("serving stdio")
