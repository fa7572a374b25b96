"""The guard trusts a REST tool's rendered authority only when the document wrote it (or the operator allows it).

How the URL was built no longer matters: filters (``join``, ``replace``) and subscripts
(``request['headers']['x']``) cannot make a client-chosen internal host pass. An internal host that no
document names is stood for by a listener on 127.0.0.2.
"""

from __future__ import annotations

import threading
import time

import pytest

from gateway_server.backends import CallContext, make_backend
from gateway_server.backends.guard import Guard
from gateway_server.backends.http import HttpClient
from gateway_server.backends.rest import result_text
from tests.helpers import _QuietHandler, _ThreadingServer

SECRET = "internal-secret-body"


def _serve(host: str):
    from wsgiref.simple_server import make_server

    hits: list[str] = []

    def app(environ, start_response):
        hits.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{SECRET} {environ.get('HTTP_HOST')}".encode()]

    try:
        server = make_server(host, 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:  # pragma: no cover - every Linux routes 127/8 to lo
        pytest.skip(f"cannot bind {host}: {exc}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, hits


@pytest.fixture(scope="module")
def internal():
    """The internal host: 127.0.0.2 on a free port; yields (port, hits)."""
    server, hits = _serve("127.0.0.2")
    try:
        yield server.server_port, hits
    finally:
        server.shutdown()
        server.server_close()


def rest(tools, *, config=None, client=None, document=None):
    server = {"name": "svc", "config": config or {}}
    return make_backend("rest", name="svc", server=server, tools=tools, document=document or {}, client=client)


def steered_tools(port: int) -> list[dict]:
    return [
        {"name": "joined", "endpoint": "http://{{ args.parts | join('.') }}:" + str(port) + "/x",
         "args": [{"name": "parts", "type": "array", "position": "body"}]},
        {"name": "replaced", "endpoint": "http://{{ args.host | replace('e', '.') }}:" + str(port) + "/x",
         "args": [{"name": "host", "position": "body"}]},
        {"name": "subscript", "endpoint": "http://{{ request['headers']['x-target'] }}:" + str(port) + "/x"},
        {"name": "query", "endpoint": "http://{{ request['query']['h'] }}:" + str(port) + "/x"},
        {"name": "literal", "endpoint": "http://127.0.0.1:9/never"},  # names another internal authority
    ]


CALLS = [("joined", {"parts": ["127", "0", "0", "2"]}, {}),
         ("replaced", {"host": "127e0e0e2"}, {}),
         ("subscript", {}, {"headers": {"x-target": "127.0.0.2"}}),
         ("query", {}, {"query": {"h": "127.0.0.2"}})]


@pytest.mark.parametrize("tool,arguments,request_data", CALLS, ids=[c[0] for c in CALLS])
def test_client_steered_internal_host_is_refused(internal, tool, arguments, request_data):
    port, hits = internal
    before = len(hits)
    result = rest(steered_tools(port)).call_tool(tool, arguments, CallContext(**request_data))
    assert result["isError"] is True, result
    assert result_text(result).startswith("refused: 127.0.0.2 is a loopback/private address"), result
    assert SECRET not in result_text(result)
    assert len(hits) == before


def test_the_same_host_is_reachable_when_the_document_writes_it(internal):
    port, _ = internal
    config = {"internal": f"http://127.0.0.2:{port}"}
    server = rest(steered_tools(port), config=config)
    for tool, arguments, request_data in CALLS:
        result = server.call_tool(tool, arguments, CallContext(**request_data))
        assert result["isError"] is False and result_text(result) == f"{SECRET} 127.0.0.2:{port}", (tool, result)
    # written in another part of the document (an upstream's url) counts too
    doc = {"mcpServers": [{"name": "u", "type": "streamable-http", "url": f"http://127.0.0.2:{port}/mcp"}]}
    result = rest(steered_tools(port), document=doc).call_tool(*CALLS[0][:2], CallContext())
    assert result["isError"] is False, result
    # another port of the written host is not the written authority
    other = rest(steered_tools(port + 1 if port < 65535 else port - 1), config=config)
    refused = other.call_tool(*CALLS[0][:2], CallContext())
    assert result_text(refused).startswith("refused: 127.0.0.2 is a loopback/private address"), refused


def test_operator_env_value_is_the_operators(internal, monkeypatch):
    port, _ = internal
    monkeypatch.setenv("MCPGW_TEMPLATE_ENV", "GUARD_INTERNAL_BASE")
    monkeypatch.setenv("GUARD_INTERNAL_BASE", f"127.0.0.2:{port}")
    tool = {"name": "t", "endpoint": "http://{{ config.host }}/x"}
    result = rest([tool], config={"host": '{{ env("GUARD_INTERNAL_BASE") }}'}).call_tool("t", {}, CallContext())
    assert result["isError"] is False and result_text(result) == f"{SECRET} 127.0.0.2:{port}", result


def test_operator_allow_list_of_authorities(internal):
    port, _ = internal
    for allow in ([f"127.0.0.2:{port}"], ["127.0.0.2"]):
        client = HttpClient(guard=Guard(allow_hosts=allow))
        result = rest(steered_tools(port), client=client).call_tool(*CALLS[0][:2], CallContext())
        assert result["isError"] is False, (allow, result)
    client = HttpClient(guard=Guard(allow_hosts=[f"127.0.0.2:{port + 1}"]))
    result = rest(steered_tools(port), client=client).call_tool(*CALLS[0][:2], CallContext())
    assert result_text(result).startswith("refused: 127.0.0.2 is a loopback/private address"), result


def test_allow_hosts_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("MCPGW_OUTBOUND_ALLOW_HOSTS", "127.0.0.2:8080, [::1]:9, internal.example")
    guard = Guard()
    assert guard.allows("127.0.0.2", 8080) and guard.allows("::1", 9) and guard.allows("internal.example", 1)
    assert not guard.allows("127.0.0.2", 8081)
    assert guard.check("127.0.0.2", 8080, literal=False) == ["127.0.0.2"]


def test_guard_cost_per_call(capsys):
    """Not a gate: prints what a cached guard decision and a full rendered-authority check cost."""
    guard = Guard()
    guard.check("127.0.0.1", 80, literal=True)
    n = 20000
    start = time.perf_counter()
    for _ in range(n):
        guard.check("127.0.0.1", 80, literal=True)
    cached = (time.perf_counter() - start) / n * 1e6
    start = time.perf_counter()
    for _ in range(2000):
        Guard(ttl=0).check("127.0.0.1", 80, literal=True)
    fresh = (time.perf_counter() - start) / 2000 * 1e6
    with capsys.disabled():
        print(f"\nguard.check: {cached:.2f} µs cached, {fresh:.1f} µs with resolution and classification")
