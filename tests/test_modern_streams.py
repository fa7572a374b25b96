"""MCP 2026-07-28 streams against a real gateway: per-request progress and logs, cancel on close, listen.

One gateway (reloading every 0.3 s, heartbeats every second) serves the demo REST tools
(``/gateway/demo``), the conformance fixture upstream over stdio (``/gateway/conformance``) and a
second REST document (``/gateway/extra``) whose router a test removes.
"""

from __future__ import annotations

import copy
import json
import queue
import socket
import sys
import threading
import time

import pytest
import requests

from tests.fixtures_gateway import (
    FIXTURE,
    demo_document,
    hang_up,
    migrated_store,
    run_backend,
    run_gateway,
    start_fixture,
)
from tests.helpers import Procs, wait_for
from tests.test_modern import body, headers_for, meta, send

OPEN = "/gateway/demo"
UPSTREAM = "/gateway/conformance"
EXTRA = "/gateway/extra"
NEW_TOOL = {"name": "count_users", "description": "How many users there are.", "method": "GET",
            "endpoint": "{{ config.baseUrl }}/users", "responseBody": "{{ response.data.count }}"}


class PostStream:
    """POST a modern request and read its SSE answer in a thread: ``(kind, payload)`` in a queue.

    ``kind`` is ``"message"`` (payload: the JSON-RPC message), ``"comment"`` (the comment text) or
    ``"end"`` (the server ended the stream).
    """

    def __init__(self, url: str, message: dict, **extra):
        self.resp = requests.post(url, json=message, headers=headers_for(message, **extra), stream=True,
                                  timeout=(5, 60))
        self.items: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        data: list[str] = []
        try:
            for line in self.resp.iter_lines(decode_unicode=True):
                if line == "":
                    if data:
                        self.items.put(("message", json.loads("\n".join(data))))
                    data = []
                elif line.startswith(":"):
                    self.items.put(("comment", line[1:].strip()))
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except Exception:  # noqa: BLE001 - the stream ends when the test closes it
            pass
        self.items.put(("end", None))

    def next_message(self, timeout: float = 10.0) -> dict | None:
        """The next JSON-RPC message (comments skipped); ``None`` when the stream ended."""
        while True:
            kind, payload = self.items.get(timeout=timeout)
            if kind == "end":
                return None
            if kind == "message":
                return payload

    def messages_until_response(self, timeout: float = 15.0) -> list[dict]:
        """Every message up to and including the one with an ``id`` (the response)."""
        out = []
        while True:
            message = self.next_message(timeout)
            assert message is not None, f"the stream ended before the response: {out}"
            out.append(message)
            if "id" in message:
                return out

    def close(self):
        """Hang up: shut the socket down so the gateway sees the connection close."""
        hang_up(self.resp, self.thread)


class Env:
    def __init__(self, gw, store, backend):
        self.gw, self.store, self.backend = gw, store, backend

    def url(self, prefix: str = OPEN) -> str:
        return self.gw.mcp_url(prefix)

    def save(self, document: dict) -> None:
        """Save ``document`` and wait until the gateway serves the new revision."""
        self.store.save_document(document)
        self.gw.wait_revision(self.store.revision())


def _extra_document(backend: str) -> dict:
    return demo_document(backend, name="extra", prefix=EXTRA)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with Procs(tmp_path_factory.mktemp("modern-streams")) as procs:
        backend = run_backend(procs)
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        store = migrated_store(url)
        try:
            upstream = {"name": "conformance", "tenant": "default",
                        "routers": [{"prefix": UPSTREAM, "server": "fixture"}],
                        "mcpServers": [{"name": "fixture", "type": "stdio", "command": sys.executable,
                                        "args": [FIXTURE], "toolPrefix": ""}]}
            for doc in (demo_document(backend), upstream, _extra_document(backend)):
                store.save_document(doc)
            gw = run_gateway(procs, url, revision=store.revision(), reload_interval=0.3,
                             env={"MCPGW_SSE_HEARTBEAT": "1"})
            yield Env(gw, store, backend)
        finally:
            store.close()


def call(env, name: str, arguments: dict | None = None, *, id=1, prefix: str = UPSTREAM, **meta_extra) -> dict:
    return body("tools/call", {"name": name, "arguments": arguments or {}}, id=id, envelope=meta(**meta_extra))


def _result_text(message: dict) -> str:
    return message["result"]["content"][0]["text"]


# -- progress and logs on the request's own stream ------------------------------------------------------


@pytest.mark.parametrize("token", ["progress-test-1", 7])
def test_progress_arrives_on_the_requests_stream_with_the_clients_token(env, token):
    stream = PostStream(env.url(UPSTREAM), call(env, "test_tool_with_progress", id=3, progressToken=token))
    try:
        assert stream.resp.status_code == 200
        assert stream.resp.headers["Content-Type"] == "text/event-stream"
        assert stream.resp.headers["X-Accel-Buffering"] == "no"
        messages = stream.messages_until_response()
    finally:
        stream.close()
    *notes, response = messages
    assert [n["method"] for n in notes] == ["notifications/progress"] * 3
    assert [n["params"]["progressToken"] for n in notes] == [token] * 3
    assert [n["params"]["progress"] for n in notes] == [0, 50, 100]
    assert response["id"] == 3 and _result_text(response) == "Progress tool completed"
    assert response["result"]["resultType"] == "complete"


def test_json_when_nothing_notifies_and_mapped_statuses_for_early_errors(env):
    resp = send(env.url(UPSTREAM), call(env, "echo", {"text": "hi"}, progressToken="p"))
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    assert _result_text(resp.json()) == "hi"
    resp = send(env.url(OPEN), call(env, "list_users", progressToken="p"))  # a REST tool
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    resp = send(env.url(UPSTREAM), call(env, "no_such_tool", id=9))
    assert resp.status_code == 400 and resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["code"] == -32602 and resp.json()["id"] == 9


def test_log_messages_only_when_the_request_sets_a_log_level(env):
    # Without logLevel: no notifications/message, so the answer stays JSON.
    resp = send(env.url(UPSTREAM), call(env, "test_logging_tool"))
    assert resp.headers["Content-Type"] == "application/json"
    assert _result_text(resp.json()) == "Logging tool executed successfully"
    # A level above the tool's messages (info) filters them all out.
    resp = send(env.url(UPSTREAM), call(env, "test_logging_tool", **{"io.modelcontextprotocol/logLevel": "error"}))
    assert resp.headers["Content-Type"] == "application/json"
    stream = PostStream(env.url(UPSTREAM), call(env, "test_logging_tool", id="log",
                                                **{"io.modelcontextprotocol/logLevel": "info"}))
    try:
        *notes, response = stream.messages_until_response()
    finally:
        stream.close()
    assert [n["method"] for n in notes] == ["notifications/message"] * 3
    assert {n["params"]["level"] for n in notes} == {"info"}
    assert response["id"] == "log" and "result" in response
    resp = send(env.url(UPSTREAM), call(env, "test_logging_tool", **{"io.modelcontextprotocol/logLevel": "loud"}))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32602


# -- cancellation when the client closes the stream -----------------------------------------------------


def _slow_calls(env) -> dict:
    """``{"running": n, "cancelled": m}``: the fixture upstream's own count of its ``slow`` calls."""
    return json.loads(_result_text(send(env.url(UPSTREAM), call(env, "cancellations")).json()))


def _cancellations(env) -> int:
    return _slow_calls(env)["cancelled"]


def test_closing_the_stream_cancels_the_upstream_call(env):
    before = _cancellations(env)
    stream = PostStream(env.url(UPSTREAM), call(env, "slow", {"seconds": 30}, id=5, progressToken="slow-1"))
    try:
        first = stream.next_message()
        assert first["method"] == "notifications/progress" and first["params"]["progressToken"] == "slow-1"
    finally:
        stream.close()  # mid-call: the upstream is still sleeping
    wait_for(lambda: _cancellations(env) > before, timeout=10, what="the upstream to see notifications/cancelled")


def test_hanging_up_before_any_answer_cancels_too(env):
    before = _cancellations(env)
    message = call(env, "slow", {"seconds": 30}, id=6)
    payload = json.dumps(message).encode()
    hdrs = {**headers_for(message), "Content-Length": str(len(payload)), "Host": f"127.0.0.1:{env.gw.port}"}
    with socket.create_connection(("127.0.0.1", env.gw.port), timeout=5) as sock:
        head = f"POST {UPSTREAM}/mcp HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        sock.sendall(head.encode() + payload)
        # No progress was asked for, so the gateway holds its answer back (JSON, deferred) while slow runs.
        wait_for(lambda: _slow_calls(env)["running"] > 0, timeout=10, what="the upstream's slow call to start")
    wait_for(lambda: _cancellations(env) > before, timeout=10, what="the upstream to see notifications/cancelled")


# -- subscriptions/listen -------------------------------------------------------------------------------


def listen(env, notifications: dict, *, id="listen-1", prefix: str = OPEN) -> PostStream:
    return PostStream(env.url(prefix), body("subscriptions/listen", {"notifications": notifications}, id=id))


def _with_new_tool(backend: str) -> dict:
    doc = demo_document(backend)
    doc["tools"].append(NEW_TOOL)
    doc["servers"][0]["allowedTools"].append(NEW_TOOL["name"])
    return doc


def test_discover_advertises_list_changed(env):
    caps = send(env.url(UPSTREAM), body("server/discover")).json()["result"]["capabilities"]
    assert caps["tools"] == {"listChanged": True} and caps["prompts"] == {"listChanged": True}
    # The fixture offers resources/subscribe: listen streams get resourceSubscriptions of it.
    assert caps["resources"] == {"listChanged": True, "subscribe": True} and "logging" in caps
    caps = send(env.url(OPEN), body("server/discover")).json()["result"]["capabilities"]
    assert "resources" not in caps  # REST tools only


def test_listen_acknowledges_then_announces_a_config_change_to_who_asked(env):
    tools = listen(env, {"toolsListChanged": True, "resourceSubscriptions": ["demo://x"]}, id="listen-1")
    prompts = listen(env, {"promptsListChanged": True}, id=42)
    try:
        assert tools.resp.status_code == 200 and tools.resp.headers["Content-Type"] == "text/event-stream"
        assert "Mcp-Session-Id" not in tools.resp.headers
        ack = tools.next_message()
        assert ack == {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                       "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": "listen-1"},
                                  "notifications": {"toolsListChanged": True}}}
        ack = prompts.next_message()
        assert ack["params"] == {"_meta": {"io.modelcontextprotocol/subscriptionId": 42},
                                 "notifications": {"promptsListChanged": True}}
        env.save(_with_new_tool(env.backend))
        note = tools.next_message()
        assert note == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                        "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": "listen-1"}}}
        names = [t["name"] for t in send(env.url(), body("tools/list")).json()["result"]["tools"]]
        assert NEW_TOOL["name"] in names
        # Then a prompt change: the prompts-only listener's first notification is that one (no tools one before).
        doc = _with_new_tool(env.backend)
        doc = copy.deepcopy(doc)
        first = doc["prompts"][0]
        first["description"] = (first.get("description") or "") + " (changed)"
        env.save(doc)
        note = prompts.next_message()
        assert note == {"jsonrpc": "2.0", "method": "notifications/prompts/list_changed",
                        "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": 42}}}
    finally:
        tools.close()
        prompts.close()
        env.save(demo_document(env.backend))


def test_listen_stream_has_heartbeats_and_closes_gracefully_when_the_route_goes(env):
    stream = listen(env, {"toolsListChanged": True}, id="extra-1", prefix=EXTRA)
    try:
        assert stream.next_message()["method"] == "notifications/subscriptions/acknowledged"
        kind, text = stream.items.get(timeout=10)  # a quiet stream: the next item is a heartbeat comment
        assert (kind, text) == ("comment", "ping")
        env.store.delete_document("default", "extra")
        final = stream.next_message()
        assert final["id"] == "extra-1" and final["result"]["resultType"] == "complete"
        assert final["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "extra-1"
        assert stream.next_message() is None  # and the stream ends
    finally:
        stream.close()
        env.save(_extra_document(env.backend))


def test_listen_without_a_filter_object_is_invalid_params(env):
    resp = send(env.url(), body("subscriptions/listen", {}, id=8))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32602 and resp.json()["id"] == 8


def test_listen_filter_resource_subscriptions_must_be_strings(env):
    resp = send(env.url(UPSTREAM), body("subscriptions/listen", {"notifications": {"resourceSubscriptions": "x"}},
                                        id=9))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32602 and resp.json()["id"] == 9


# -- resourceSubscriptions: one holder per upstream, updates fanned out to the streams that subscribed -----

WATCHED = "test://watched-resource"
ERAS = {"legacy": "/gateway/subs-legacy", "modern": "/gateway/subs-modern"}


def _subs_document(url: str, timeout: int = 30) -> dict:
    return {"name": "subs", "tenant": "default",
            "routers": [{"prefix": ERAS["legacy"], "server": "legacy_fx"},
                        {"prefix": ERAS["modern"], "server": "modern_fx"}],
            "mcpServers": [{"name": "legacy_fx", "type": "streamable-http", "url": url, "era": "legacy",
                            "toolPrefix": "", "timeout": timeout},
                           {"name": "modern_fx", "type": "streamable-http", "url": url, "toolPrefix": ""}]}


@pytest.fixture(scope="module")
def subs_env(env, tmp_path_factory):
    """The fixture over Streamable HTTP (one process: a touch reaches every session of it) behind two
    routers, one whose upstream is forced to the legacy era and one that classifies it (modern)."""
    proc, url = start_fixture(tmp_path_factory.mktemp("subs"), "streamable-http")
    try:
        env.save(_subs_document(url))
        env.subs_url = url

        def subscribable(prefix: str) -> bool:
            caps = send(env.url(prefix), body("server/discover")).json()["result"]["capabilities"]
            return caps.get("resources", {}).get("subscribe") is True

        for prefix in ERAS.values():
            wait_for(lambda p=prefix: subscribable(p), timeout=30, what=f"{prefix} to offer resources.subscribe")
        yield env
    finally:
        env.store.delete_document("default", "subs")
        proc.stop()


def _quiet(stream: PostStream, seconds: float = 2.0) -> list[dict]:
    """The messages ``stream`` got within ``seconds`` (heartbeat comments left out)."""
    got, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            kind, payload = stream.items.get(timeout=left)
        except queue.Empty:
            break
        if kind == "message":
            got.append(payload)
    return got


def _updates_until(stream: PostStream, uri: str, timeout: float = 10.0) -> dict:
    """Read ``stream`` up to the first ``notifications/resources/updated`` of ``uri``."""
    while True:
        message = stream.next_message(timeout)
        assert message is not None, "the listen stream ended"
        assert message["method"] == "notifications/resources/updated", message
        if message["params"]["uri"] == uri:
            return message


@pytest.mark.parametrize("era", ["legacy", "modern"])
def test_resource_subscriptions_on_listen_streams(subs_env, era):
    prefix = ERAS[era]
    watcher = listen(subs_env, {"resourceSubscriptions": [WATCHED, WATCHED]}, id=f"watch-{era}", prefix=prefix)
    other = listen(subs_env, {"toolsListChanged": True, "resourceSubscriptions": ["test://static-text"]}, id=7,
                   prefix=prefix)
    bystander = listen(subs_env, {"toolsListChanged": True}, id="none", prefix=prefix)
    try:
        ack = watcher.next_message()
        assert ack == {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                       "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": f"watch-{era}"},
                                  "notifications": {"resourceSubscriptions": [WATCHED]}}}
        assert other.next_message()["params"]["notifications"] == {"toolsListChanged": True,
                                                                   "resourceSubscriptions": ["test://static-text"]}
        assert bystander.next_message()["params"]["notifications"] == {"toolsListChanged": True}
        for stream in (watcher, other):  # the fixture answers resources/subscribe with an update at once
            _quiet(stream, 0.5)
        touched = send(subs_env.url(prefix), call(subs_env, "touch_resource", {"uri": WATCHED}, prefix=prefix))
        assert touched.status_code == 200 and "touched" in _result_text(touched.json())
        update = _updates_until(watcher, WATCHED)
        assert update == {"jsonrpc": "2.0", "method": "notifications/resources/updated",
                          "params": {"uri": WATCHED, "_meta": {"io.modelcontextprotocol/subscriptionId": f"watch-{era}"}}}
        assert _quiet(other) == [] and _quiet(bystander, 0.1) == []  # neither subscribed to that URI
        # The other URI reaches its own subscriber only.
        send(subs_env.url(prefix), call(subs_env, "touch_resource", {"uri": "test://static-text"}, prefix=prefix))
        note = _updates_until(other, "test://static-text")
        assert note["params"]["_meta"] == {"io.modelcontextprotocol/subscriptionId": 7}
        assert _quiet(watcher, 1.0) == [] and _quiet(bystander, 0.1) == []
    finally:
        for stream in (watcher, other, bystander):
            stream.close()
    # After the last stream of the URI went (unsubscribed upstream), a new stream subscribes it again.
    again = listen(subs_env, {"resourceSubscriptions": [WATCHED]}, id="again", prefix=prefix)
    try:
        assert again.next_message()["params"]["notifications"] == {"resourceSubscriptions": [WATCHED]}
        _quiet(again, 0.5)
        send(subs_env.url(prefix), call(subs_env, "touch_resource", {"uri": WATCHED}, prefix=prefix))
        assert _updates_until(again, WATCHED)["params"]["_meta"] == {"io.modelcontextprotocol/subscriptionId": "again"}
    finally:
        again.close()


def test_a_reload_replacing_the_watched_upstream_ends_the_stream_gracefully(subs_env):
    watcher = listen(subs_env, {"resourceSubscriptions": [WATCHED]}, id="replaced", prefix=ERAS["legacy"])
    lists = listen(subs_env, {"toolsListChanged": True}, id="lists", prefix=ERAS["legacy"])
    try:
        assert watcher.next_message()["params"]["notifications"] == {"resourceSubscriptions": [WATCHED]}
        assert lists.next_message()["method"] == "notifications/subscriptions/acknowledged"
        subs_env.save(_subs_document(subs_env.subs_url, timeout=31))  # a new legacy_fx backend
        final = next(m for m in iter(watcher.next_message, None) if "id" in m)
        assert final["id"] == "replaced" and final["result"]["resultType"] == "complete"
        assert all("id" not in m for m in _quiet(lists, 1.0))  # a stream watching no resources stays
    finally:
        watcher.close()
        lists.close()
        subs_env.save(_subs_document(subs_env.subs_url))


def test_listen_filter_bounds_resource_subscriptions(env):
    """Each URI becomes an upstream subscribe before the acknowledgement: too many, or too long, is refused."""
    for uris in ([f"test://r{i}" for i in range(101)], ["test://" + "x" * 2048]):
        resp = send(env.url(UPSTREAM), body("subscriptions/listen", {"notifications": {"resourceSubscriptions": uris}},
                                            id=10))
        assert resp.status_code == 400 and resp.json()["error"]["code"] == -32602, resp.text
        assert "at most 100 URIs" in resp.json()["error"]["message"]


def test_listen_streams_are_bounded_per_principal(tmp_path):
    """Above ``max_listen_per_principal`` a listen gets 429 naming the setting; a closed stream frees its place."""
    with Procs(tmp_path) as procs:
        backend = run_backend(procs)
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        store = migrated_store(url)
        try:
            store.save_document(demo_document(backend))
            gw = run_gateway(procs, url, revision=store.revision(), env={"MCPGW_MAX_LISTEN_PER_PRINCIPAL": "2"})
            small = Env(gw, store, backend)
            streams = [listen(small, {"toolsListChanged": True}, id=f"bounded-{i}") for i in range(2)]
            try:
                for stream in streams:
                    assert stream.next_message()["method"] == "notifications/subscriptions/acknowledged"
                third = send(small.url(), body("subscriptions/listen", {"notifications": {"toolsListChanged": True}},
                                               id="bounded-2"))
                assert third.status_code == 429, third.text
                assert "max_listen_per_principal" in third.json()["error"]["message"]
                streams.pop().close()

                def admitted() -> bool:
                    again = listen(small, {"toolsListChanged": True}, id="bounded-again")
                    streams.append(again)
                    return again.resp.status_code == 200

                wait_for(admitted, timeout=15, interval=0.5, what="a closed listen stream to free its place")
            finally:
                for stream in streams:
                    stream.close()
        finally:
            store.close()
