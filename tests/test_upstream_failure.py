"""Upstream failure is contained: a killed stdio upstream, a slow one, and sessions that expire.

A real gateway serves a stdio fixture upstream at ``/gateway/fx``, a second one at ``/gateway/other``
and the demo REST document at ``/gateway/demo``. The upstream's pid comes from ``/readyz``.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import sys
import threading
import time

import pytest
import requests

from tests.fixtures_gateway import FIXTURE, GatewayProc, demo_document, run_backend, run_gateway, seed
from tests.helpers import Procs, wait_for

FX, OTHER, DEMO = "/gateway/fx", "/gateway/other", "/gateway/demo"
CALL_TIMEOUT = 10


def upstream_document(name: str, prefix: str) -> dict:
    """A document serving the conformance fixture over stdio at ``prefix``."""
    return {"name": name, "tenant": "default", "routers": [{"prefix": prefix, "server": name}],
            "mcpServers": [{"name": name, "type": "stdio", "command": sys.executable, "args": [FIXTURE],
                            "timeout": CALL_TIMEOUT}]}


class Mcp:
    """A minimal Streamable HTTP session over ``requests`` (safe to use from several threads)."""

    def __init__(self, url: str):
        self.url = url
        self.ids = itertools.count(1)
        self.headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        init = self.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        self.headers["Mcp-Session-Id"] = init.headers["Mcp-Session-Id"]
        self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def post(self, body: dict, timeout: float = 30) -> requests.Response:
        resp = requests.post(self.url, json=body, headers=self.headers, timeout=timeout)
        assert resp.status_code in (200, 202), (resp.status_code, resp.text)
        return resp

    def request(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        """The JSON-RPC response (JSON or the last SSE event carrying the id)."""
        rid = next(self.ids)
        resp = self.post({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}, timeout)
        if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
            messages = [json.loads(line[5:]) for line in resp.text.splitlines() if line.startswith("data:")]
            return next(m for m in messages if m.get("id") == rid)
        return resp.json()

    def call(self, name: str, arguments: dict | None = None, timeout: float = 30) -> dict:
        """A ``tools/call`` result."""
        return self.request("tools/call", {"name": name, "arguments": arguments or {}}, timeout)["result"]


def text(result: dict) -> str:
    return result["content"][0]["text"]


def _start(procs: Procs, env: dict | None = None) -> GatewayProc:
    """The demo backend and a gateway serving the demo document and the ``fx`` and ``other`` upstreams."""
    backend = run_backend(procs)
    url = f"sqlite:///{procs.log_dir / 'gw.db'}"
    revision = seed(url, demo_document(backend), upstream_document("fx", FX), upstream_document("other", OTHER))
    return run_gateway(procs, url, reload_interval=0.5, env=env, revision=revision)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """A gateway with two stdio upstream prefixes and the demo REST prefix."""
    with Procs(tmp_path_factory.mktemp("fail")) as procs:
        yield _start(procs)


def upstream_status(gw: GatewayProc, server: str) -> dict:
    """The ``/readyz`` entry of one upstream."""
    return next(u for u in gw.readyz()["upstreams"] if u["server"] == server)


def ready_pid(gw: GatewayProc, server: str) -> int:
    """Wait until the upstream is ready; return its process id."""
    status = wait_for(lambda: (s := upstream_status(gw, server))["state"] == "ready" and s["pid"] and s,
                      timeout=30, what=f"upstream {server} ready")
    return status["pid"]


def test_readyz_and_metrics_show_each_upstream(gw):
    ready_pid(gw, "fx")
    ready_pid(gw, "other")
    doc = gw.readyz()
    by_name = {u["server"]: u for u in doc["upstreams"]}
    assert by_name["fx"]["document"] == "default/fx" and by_name["fx"]["type"] == "stdio"
    assert by_name["fx"]["state"] == "ready" and by_name["other"]["state"] == "ready"
    assert doc["hidden_tools"] == {}
    metrics = requests.get(f"{gw.base}/metrics", timeout=5).text
    assert 'mcpgw_upstream_state{document="default/fx",server="fx",state="ready"} 1.0' in metrics
    assert 'mcpgw_upstream_restarts{document="default/other",server="other"}' in metrics


def test_killed_upstream_fails_the_call_in_flight_then_restarts(gw):
    pid = ready_pid(gw, "fx")
    restarts = upstream_status(gw, "fx")["restarts"]
    session = Mcp(gw.mcp_url(FX))
    assert int(text(session.call("pid"))) == pid
    other, demo = Mcp(gw.mcp_url(OTHER)), Mcp(gw.mcp_url(DEMO))
    box: dict = {}

    def slow_call():
        started = time.monotonic()
        box["result"] = session.call("slow", {"seconds": 60})
        box["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=slow_call)
    thread.start()
    wait_for(lambda: upstream_status(gw, "fx")["calls"] == 1, what="the call to be in flight upstream")
    os.kill(pid, signal.SIGKILL)
    # During the outage, other prefixes answer.
    assert text(other.call("echo", {"text": "still here"})) == "still here"
    assert "Ada Lovelace" in text(demo.call("get_user", {"email": "ada@example.com"}))
    thread.join(CALL_TIMEOUT + 5)
    assert not thread.is_alive()
    result = box["result"]
    assert result["isError"] and "fx" in text(result), result
    assert box["elapsed"] < CALL_TIMEOUT, box["elapsed"]
    # The next call succeeds on a restarted process.
    after = wait_for(lambda: (r := session.call("pid")) and not r.get("isError") and r, timeout=30,
                     what="a call after the restart")
    assert int(text(after)) != pid
    status = upstream_status(gw, "fx")
    assert status["restarts"] == restarts + 1 and status["state"] == "ready" and status["pid"] != pid
    assert 'mcpgw_upstream_restarts{document="default/fx",server="fx"} ' + f"{restarts + 1}.0" in requests.get(
        f"{gw.base}/metrics", timeout=5).text


def test_slow_upstream_call_does_not_block_other_sessions(gw):
    ready_pid(gw, "fx")
    slow_session, quick_session = Mcp(gw.mcp_url(FX)), Mcp(gw.mcp_url(FX))
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(slow_session.call("slow", {"seconds": 5})))
    thread.start()
    wait_for(lambda: upstream_status(gw, "fx")["calls"] == 1, what="the slow call to be in flight upstream")
    for i in range(3):
        assert text(quick_session.call("echo", {"text": f"quick {i}"})) == f"quick {i}"
    assert "Ada Lovelace" in text(Mcp(gw.mcp_url(DEMO)).call("get_user", {"email": "ada@example.com"}))
    # All answered while the slow call was still running upstream.
    assert thread.is_alive() and upstream_status(gw, "fx")["calls"] == 1
    thread.join(15)
    assert text(box) == "slept 5.0"


def test_expired_session_closes_its_upstream_session(procs):
    """A session that times out without DELETE releases its own upstream session (a process for stdio)."""
    gw = _start(procs, env={"MCPGW_SESSION_TTL": "3"})
    ready_pid(gw, "fx")
    session = Mcp(gw.mcp_url(FX))
    # logging/setLevel gives the session an upstream session of its own.
    assert "result" in session.request("logging/setLevel", {"level": "info"})
    assert upstream_status(gw, "fx")["sessions"] == 1
    wait_for(lambda: upstream_status(gw, "fx")["sessions"] == 0, timeout=15, interval=0.2,
             what="the expired session's upstream session to close")
    expired = requests.post(gw.mcp_url(FX), json={"jsonrpc": "2.0", "id": 9, "method": "ping"},
                            headers=session.headers, timeout=5)
    assert expired.status_code == 404
    # DELETE still closes at once.
    fresh = Mcp(gw.mcp_url(FX))
    assert "result" in fresh.request("logging/setLevel", {"level": "info"})
    assert upstream_status(gw, "fx")["sessions"] == 1
    assert requests.delete(gw.mcp_url(FX), headers=fresh.headers, timeout=5).status_code == 200
    assert upstream_status(gw, "fx")["sessions"] == 0
