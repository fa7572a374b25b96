"""The outbound guard: metadata and link-local always refused; internal hosts only when written in the config."""

from __future__ import annotations

import threading

import pytest

from gateway_server.backends import CallContext, make_backend
from gateway_server.backends.guard import Guard, Refused, classify, host_tokens
from gateway_server.backends.http import HttpClient
from gateway_server.backends.rest import result_text
from tests.helpers import wsgi_server


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/to-metadata":
        start_response("302 Found", [("Location", "http://169.254.169.254/latest/meta-data/")])
        return [b""]
    if path == "/to-localhost":
        start_response("307 Temporary Redirect", [("Location", f"http://localhost:{environ['SERVER_PORT']}/ok")])
        return [b""]
    body = f"ok {environ.get('HTTP_HOST')}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def backend():
    """A real HTTP server on loopback; yields its port."""
    server = wsgi_server(_app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def rest(tools, *, config=None, client=None):
    server = {"name": "svc", "config": config or {}}
    return make_backend("rest", name="svc", server=server, tools=tools, document={}, client=client)


def test_classify_addresses():
    assert classify("169.254.169.254") == "metadata"
    assert classify("fd00:ec2::254") == "metadata"
    assert classify("100.100.100.200") == "metadata"
    assert classify("169.254.10.1") == "link-local"
    assert classify("fe80::1") == "link-local"
    assert classify("::ffff:169.254.169.254") == "metadata"
    assert classify("127.0.0.1") == "internal"
    assert classify("10.1.2.3") == "internal"
    assert classify("::1") == "internal"
    assert classify("8.8.8.8") == "public"


@pytest.mark.parametrize("address", ["169.254.169.254", "169.254.1.1", "100.100.100.200"])
def test_metadata_and_link_local_always_refused(address):
    guard = Guard(allow_argument_hosts=["0.0.0.0/0"])
    with pytest.raises(Refused, match=f"refused: {address} is a link-local/metadata address"):
        guard.check(address, 80, literal=True)


def test_literal_internal_host_allowed_argument_host_refused_unless_allowed():
    assert Guard().check("127.0.0.1", 80, literal=True) == ["127.0.0.1"]
    with pytest.raises(Refused, match="loopback/private"):
        Guard().check("127.0.0.1", 80, literal=False)
    with pytest.raises(Refused):
        Guard().check("10.0.0.5", 80, literal=False)
    assert Guard(allow_argument_hosts=["127.0.0.0/8"]).check("127.0.0.1", 80, literal=False) == ["127.0.0.1"]


def test_allow_argument_hosts_setting_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("MCPGW_ALLOW_ARGUMENT_HOSTS", "10.0.0.0/8, 127.0.0.1/32")
    assert Guard().check("127.0.0.1", 80, literal=False) == ["127.0.0.1"]


def test_host_tokens_of_config_text():
    tokens = host_tokens(["http://api.internal:8080/v1/{{ args.id }}", "https://[::1]:9/x", "{{ config.base }}"])
    assert {"api.internal", "::1"} <= tokens
    assert "127.0.0.1" not in tokens


def test_literal_loopback_endpoint_is_reachable(backend):
    result = rest([{"name": "t", "endpoint": f"http://127.0.0.1:{backend}/ok"}]).call_tool("t", {}, CallContext())
    assert result["isError"] is False and result_text(result) == f"ok 127.0.0.1:{backend}"


def test_literal_localhost_name_keeps_its_host_header(backend):
    result = rest([{"name": "t", "endpoint": "{{ config.base }}/ok"}],
                  config={"base": f"http://localhost:{backend}"}).call_tool("t", {}, CallContext())
    assert result["isError"] is False and result_text(result) == f"ok localhost:{backend}"


def test_argument_derived_loopback_host_refused_unless_allowed(backend):
    tool = {"name": "fetch", "endpoint": "http://{{ args.host }}:" + str(backend) + "/ok",
            "args": [{"name": "host", "position": "path"}]}
    refused = rest([tool]).call_tool("fetch", {"host": "127.0.0.1"}, CallContext())
    assert refused["isError"] is True
    assert result_text(refused).startswith("refused: 127.0.0.1 is a loopback/private address")
    allowed = rest([tool], client=HttpClient(guard=Guard(allow_argument_hosts=["127.0.0.0/8"])))
    result = allowed.call_tool("fetch", {"host": "127.0.0.1"}, CallContext())
    assert result["isError"] is False and result_text(result) == f"ok 127.0.0.1:{backend}"


def test_client_header_derived_host_refused(backend):
    tool = {"name": "fetch", "endpoint": "http://{{ request.headers['x-target'] }}:" + str(backend) + "/ok"}
    result = rest([tool]).call_tool("fetch", {}, CallContext(headers={"x-target": "127.0.0.1"}))
    assert result["isError"] is True and "refused" in result_text(result)


def test_metadata_endpoint_refused_even_when_literal():
    result = rest([{"name": "m", "endpoint": "http://169.254.169.254/latest/meta-data/"}]).call_tool(
        "m", {}, CallContext())
    assert result["isError"] is True
    assert result_text(result) == "refused: 169.254.169.254 is a link-local/metadata address"


def test_redirect_to_metadata_refused(backend):
    result = rest([{"name": "r", "endpoint": f"http://127.0.0.1:{backend}/to-metadata"}]).call_tool(
        "r", {}, CallContext())
    assert result["isError"] is True
    assert result_text(result) == "refused: 169.254.169.254 is a link-local/metadata address"


def test_redirect_to_unlisted_internal_host_refused(backend):
    tool = {"name": "r", "endpoint": f"http://127.0.0.1:{backend}/to-localhost"}
    result = rest([tool]).call_tool("r", {}, CallContext())
    assert result["isError"] is True and "refused" in result_text(result)
    # the same hop is fine when the operator wrote that host in the config
    listed = rest([tool], config={"other": f"http://localhost:{backend}"}).call_tool("r", {}, CallContext())
    assert listed["isError"] is False and result_text(listed) == f"ok localhost:{backend}"


class _FixedDns(Guard):
    """A guard whose DNS answers every name with 127.0.0.1, counting lookups."""

    def __init__(self):
        super().__init__()
        self.lookups = 0

    def _resolve(self, host, port):
        self.lookups += 1
        return ["127.0.0.1"]


def test_connects_to_the_checked_address_with_the_original_host_header(backend):
    guard = _FixedDns()
    server = rest([{"name": "t", "endpoint": f"http://api.example.test:{backend}/ok"}],
                  client=HttpClient(guard=guard))
    for _ in range(3):
        result = server.call_tool("t", {}, CallContext())
        assert result["isError"] is False and result_text(result) == f"ok api.example.test:{backend}"
    assert guard.lookups == 1  # one checked resolution, reused while cached; never a second, unchecked one


def test_a_name_resolving_to_metadata_is_refused():
    class Rebound(Guard):
        def _resolve(self, host, port):
            return ["93.184.216.34", "169.254.169.254"]

    with pytest.raises(Refused, match="169.254.169.254 is a link-local/metadata address"):
        Rebound().check("innocent.example.test", 80, literal=True)


def test_operator_env_host_is_trusted_even_when_the_client_host_header_names_it(backend, monkeypatch):
    monkeypatch.setenv("MCPGW_TEMPLATE_ENV", "GUARD_TEST_BASE")
    monkeypatch.setenv("GUARD_TEST_BASE", f"http://127.0.0.1:{backend}")
    tool = {"name": "t", "endpoint": "{{ config.base }}/ok",
            "headers": {"Authorization": "{{ request.headers.authorization }}"}}
    server = rest([tool], config={"base": '{{ env("GUARD_TEST_BASE") }}'})
    ctx = CallContext(headers={"host": f"127.0.0.1:{backend}", "authorization": "Bearer t"})
    result = server.call_tool("t", {}, ctx)
    assert result["isError"] is False and result_text(result) == f"ok 127.0.0.1:{backend}"
    # the same host arriving in an argument is refused
    tool = {"name": "u", "endpoint": "{{ args.base }}/ok", "args": [{"name": "base", "position": "body"}]}
    refused = rest([tool]).call_tool("u", {"base": f"http://127.0.0.1:{backend}"}, CallContext())
    assert refused["isError"] is True and "refused" in result_text(refused)
    via_get = {"name": "v", "endpoint": "http://{{ request.headers.get('x-t') }}:" + str(backend) + "/ok"}
    refused = rest([via_get]).call_tool("v", {}, CallContext(headers={"x-t": "127.0.0.1"}))
    assert refused["isError"] is True and "refused" in result_text(refused)


@pytest.fixture(scope="module")
def second_server():
    """Another loopback server on another port (standing in for the management API)."""
    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"second server secret"]

    server = wsgi_server(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


def test_arguments_reach_only_the_config_named_port_of_a_config_named_host(backend, second_server):
    config = {"base": f"http://127.0.0.1:{backend}"}
    tools = [{"name": "fetch", "endpoint": "{{ args.url }}", "args": [{"name": "url", "position": "body"}]},
             {"name": "sub", "endpoint": "{{ config.base }}{{ args.path }}", "args": [{"name": "path"}]},
             {"name": "port", "endpoint": "http://127.0.0.1:{{ args.port }}/ok", "args": [{"name": "port"}]},
             {"name": "pathport", "endpoint": "http://127.0.0.1:{port}/ok",
              "args": [{"name": "port", "position": "path"}]}]
    server = rest(tools, config=config)
    other = f"127.0.0.1:{second_server}"
    for tool, arguments in [("fetch", {"url": f"http://{other}/api/v1/users"}),
                            ("sub", {"path": f"@{other}/api/v1/users"}),
                            ("port", {"port": str(second_server)}),
                            ("pathport", {"port": str(second_server)})]:
        result = server.call_tool(tool, arguments, CallContext())
        assert result["isError"] is True, (tool, result)
        assert result_text(result).startswith("refused: 127.0.0.1 is a loopback/private address"), (tool, result)
    # the authority the config names stays reachable, whichever template produced the URL
    for tool, arguments in [("fetch", {"url": f"http://127.0.0.1:{backend}/ok"}), ("sub", {"path": "/ok"})]:
        result = server.call_tool(tool, arguments, CallContext())
        assert result["isError"] is False and result_text(result) == f"ok 127.0.0.1:{backend}", (tool, result)
    allowed = rest(tools, config=config, client=HttpClient(guard=Guard(allow_argument_hosts=["127.0.0.0/8"])))
    result = allowed.call_tool("fetch", {"url": f"http://{other}/x"}, CallContext())
    assert result["isError"] is False and result_text(result) == "second server secret"


def test_redirects_keep_to_the_config_named_port(backend, second_server):
    def app(environ, start_response):
        start_response("302 Found", [("Location", f"http://127.0.0.1:{second_server}/x")])
        return [b""]

    redirector = wsgi_server(app)
    threading.Thread(target=redirector.serve_forever, daemon=True).start()
    try:
        tool = {"name": "r", "endpoint": f"http://127.0.0.1:{redirector.server_port}/go"}
        result = rest([tool]).call_tool("r", {}, CallContext())
        assert result["isError"] is True and "refused" in result_text(result), result
        listed = rest([tool], config={"api": f"http://127.0.0.1:{second_server}"}).call_tool("r", {}, CallContext())
        assert listed["isError"] is False and result_text(listed) == "second server secret"
    finally:
        redirector.shutdown()
        redirector.server_close()
