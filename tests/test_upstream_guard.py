"""Upstream MCP connections (Streamable HTTP, SSE) pass the outbound guard after DNS resolution.

An internal host that no document names is stood for by a listener on 127.0.0.2: a client that picks
the upstream host through a request header must not reach it, and must not see what it answers.
"""

from __future__ import annotations

import threading

import pytest

from gateway_server.backends import CallContext, make_backend
from gateway_server.backends.guard import Guard
from tests.fixtures_gateway import http_url  # noqa: F401 - the conformance fixture over Streamable HTTP
from tests.helpers import _QuietHandler, _ThreadingServer

SECRET = "internal-secret-body"


@pytest.fixture(scope="module")
def internal():
    """A listener on 127.0.0.2 answering every request with HTTP 500 and a secret; yields (port, hits)."""
    from wsgiref.simple_server import make_server

    hits: list[str] = []

    def app(environ, start_response):
        hits.append(environ["PATH_INFO"])
        start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
        return [SECRET.encode()]

    try:
        server = make_server("127.0.0.2", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
    except OSError as exc:  # pragma: no cover - every Linux routes 127/8 to lo
        pytest.skip(f"cannot bind 127.0.0.2: {exc}")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port, hits
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def servers():
    made = []

    def make(spec: dict, document: dict | None = None, guard: Guard | None = None):
        server = make_backend("mcp", name="up", spec={"policy": "onDemand", "timeout": 5, **spec},
                              document=document or {"name": "doc"})
        if guard is not None:
            server.guard = guard
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def text(result: dict) -> str:
    return result["content"][0]["text"]


@pytest.mark.parametrize("kind", ["streamable-http", "sse"])
def test_client_chosen_upstream_host_is_refused_without_its_body(servers, internal, kind):
    port, hits = internal
    before = len(hits)
    up = servers({"type": kind, "url": "http://{{ request.headers['x-up'] }}/mcp"})
    result = up.call_tool("echo", {"text": "hi"}, CallContext(headers={"x-up": f"127.0.0.2:{port}"}))
    assert result["isError"] is True
    assert "refused: 127.0.0.2 is a loopback/private address" in text(result), result
    assert SECRET not in text(result)
    assert len(hits) == before  # never connected: the guard decides before any byte is sent


def test_client_chosen_metadata_upstream_is_refused(servers):
    up = servers({"type": "streamable-http", "url": "http://{{ request.headers['x-up'] }}/mcp"})
    result = up.call_tool("echo", {"text": "hi"}, CallContext(headers={"x-up": "169.254.169.254"}))
    assert result["isError"] is True and "refused: 169.254.169.254 is a link-local/metadata address" in text(result)


def test_document_literal_loopback_upstream_keeps_working(servers, http_url):  # noqa: F811
    up = servers({"type": "streamable-http", "url": http_url})
    assert text(up.call_tool("echo", {"text": "hi"}, CallContext())) == "hi"
    # The header may still choose the host, as long as it names an authority the document wrote.
    doc = {"name": "doc", "mcpServers": [{"name": "fixture", "type": "streamable-http", "url": http_url}]}
    chosen = servers({"type": "streamable-http", "url": "{{ request.headers['x-up'] }}"}, document=doc)
    assert text(chosen.call_tool("echo", {"text": "ok"}, CallContext(headers={"x-up": http_url}))) == "ok"


def test_operator_allow_list_admits_an_internal_upstream_host(servers, internal):
    port, hits = internal
    before = len(hits)
    up = servers({"type": "streamable-http", "url": "http://{{ request.headers['x-up'] }}/mcp"},
                 guard=Guard(allow_hosts=[f"127.0.0.2:{port}"]))
    result = up.call_tool("echo", {"text": "hi"}, CallContext(headers={"x-up": f"127.0.0.2:{port}"}))
    assert result["isError"] is True and "refused" not in text(result)  # reached: the listener answers 500
    assert len(hits) > before
