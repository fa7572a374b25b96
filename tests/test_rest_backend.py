"""REST tool execution against real HTTP servers: the demo backend (a subprocess) and a small WSGI app."""

from __future__ import annotations

import base64
import gzip
import json
import re
import threading
import time
import zlib

import pytest

from gateway_server.backends import CallContext, make_backend
from gateway_server.backends.http import HttpClient, decode_body
from gateway_server.backends.rest import result_text
from tests.fixtures_gateway import run_backend
from tests.helpers import Procs, free_port, wsgi_server

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo user service as a real subprocess; yields its base URL."""
    with Procs(tmp_path_factory.mktemp("demo")) as procs:
        yield run_backend(procs)


def _extra_app(release: threading.Event):
    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path.startswith("/encoded/"):
            coding = path.rsplit("/", 1)[1]
            data = json.dumps({"coding": coding, "pad": "x" * 2000}).encode()
            if coding == "gzip":
                data = gzip.compress(data)
            elif coding == "deflate":
                data = zlib.compress(data)
            elif coding == "br":
                import brotli

                data = brotli.compress(data)
            elif coding == "zstd":
                import zstandard

                data = zstandard.ZstdCompressor().compress(data)
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Encoding", coding),
                                      ("Content-Length", str(len(data)))])
            return [data]
        if path == "/redirect":
            start_response("302 Found", [("Location", "/final?from=redirect"), ("Content-Length", "0")])
            return [b""]
        if path == "/final":
            body = f"final {environ['QUERY_STRING']}".encode()
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/hang":
            release.wait(30)
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"late"]
        if path == "/big":
            start_response("200 OK", [("Content-Type", "text/plain")])  # no length: read as a stream
            return [b"y" * 65536 for _ in range(4)]
        if path == "/audio":
            start_response("200 OK", [("Content-Type", "audio/wav"), ("Content-Length", str(len(AUDIO)))])
            return [AUDIO]
        if path == "/error":
            body = b"database exploded: " + b"z" * 1000
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [body]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"nothing here"]

    return app


@pytest.fixture(scope="module")
def extra():
    """A threaded WSGI server in this process for encodings, redirects, hangs, audio and large bodies."""
    release = threading.Event()
    server = wsgi_server(_extra_app(release))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def rest(base, tools, *, config=None, allowed=None, client=None, prompts=None):
    """A RestServer over ``tools`` whose config has ``base`` as ``config.base``."""
    server = {"name": "svc", "config": {"base": base, **(config or {})}}
    if allowed is not None:
        server["allowedTools"] = allowed
    doc = {"name": "t", "tenant": "default", "servers": [server], "tools": tools, "prompts": prompts or []}
    return make_backend("rest", name="svc", server=server, tools=tools, document=doc, client=client)


def echo_tool(**extra):
    tool = {"name": "echo", "method": "POST", "endpoint": "{{ config.base }}/echo", "args": []}
    tool.update(extra)
    return tool


def echoed(result):
    assert result["isError"] is False, result
    return json.loads(result_text(result))


def test_list_tools_in_config_order_filtered_by_allowed_tools(demo):
    tools = [
        {"name": "b_tool", "description": "B", "endpoint": "{{ config.base }}/users",
         "annotations": {"title": "Bee", "readOnlyHint": True}, "meta": {"team": "x"},
         "args": [{"name": "q", "position": "query", "type": "string", "required": True}]},
        {"name": "hidden", "endpoint": "{{ config.base }}/users"},
        {"name": "a_tool", "endpoint": "{{ config.base }}/users", "outputSchema": {"type": "object"}},
    ]
    listed = rest(demo, tools, allowed=["a_tool", "b_tool"]).list_tools()
    assert [t["name"] for t in listed] == ["b_tool", "a_tool"]
    assert listed[0]["inputSchema"]["type"] == "object"
    assert listed[0]["inputSchema"]["required"] == ["q"]
    assert listed[0]["annotations"]["readOnlyHint"] is True and listed[0]["_meta"] == {"team": "x"}
    assert listed[1]["outputSchema"] == {"type": "object"}
    result = rest(demo, tools, allowed=["a_tool"]).call_tool("hidden", {}, CallContext())
    assert result["isError"] and "unknown tool" in result_text(result)


def test_a_tool_is_compiled_at_its_first_call_not_when_the_snapshot_is_built(demo):
    backend = rest(demo, [echo_tool(), echo_tool(name="other", endpoint="{{ config.base }}/echo/{{ args.x }}")])
    assert [t["name"] for t in backend.list_tools()] == ["echo", "other"] and backend.tools == {}
    assert echoed(backend.call_tool("echo", {}, CallContext()))["method"] == "POST"
    compiled = backend.tools["echo"]  # (the guard's first look at the document's endpoints compiles the others)
    assert echoed(backend.call_tool("echo", {}, CallContext()))["method"] == "POST"
    assert backend.tools["echo"] is compiled  # once


def test_path_query_header_and_body_positions(demo):
    tool = echo_tool(endpoint="{{ config.base }}/echo/items/{item}", args=[
        {"name": "item", "position": "path", "type": "string"},
        {"name": "tag", "position": "query", "type": "array"},
        {"name": "limit", "position": "query", "type": "integer"},
        {"name": "X-Trace", "position": "header", "type": "string"},
        {"name": "title", "position": "body", "type": "string"},
        {"name": "count", "position": "body", "type": "integer", "default": "3"},
        {"name": "flags", "position": "body", "type": "object"},
    ])
    out = echoed(rest(demo, [tool]).call_tool("echo", {
        "item": "a b/c", "tag": ["x", "y"], "limit": 5, "X-Trace": "t-1", "title": "hello",
        "flags": '{"on": true}'}, CallContext()))
    assert out["path"] == "/echo/items/a b/c"  # quoted on the wire, one path segment
    assert out["query"] == {"tag": ["x", "y"], "limit": ["5"]}
    assert out["headers"]["x-trace"] == "t-1"
    assert out["json"] == {"title": "hello", "count": 3, "flags": {"on": True}}


def test_form_data_is_urlencoded(demo):
    tool = echo_tool(args=[{"name": "user", "position": "form-data"}, {"name": "n", "position": "form-data",
                                                                       "type": "integer"}])
    out = echoed(rest(demo, [tool]).call_tool("echo", {"user": "ann & bob", "n": 2}, CallContext()))
    assert out["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert out["form"] == {"user": ["ann & bob"], "n": ["2"]}


def test_multipart_upload_with_two_files_and_a_field(demo):
    tool = echo_tool(args=[{"name": "photo", "position": "file"}, {"name": "doc", "position": "file"},
                           {"name": "caption", "position": "form-data"}])
    photo = {"name": "p.png", "content": base64.b64encode(b"\x89PNG-data").decode(), "contentType": "image/png"}
    out = echoed(rest(demo, [tool]).call_tool("echo", {
        "photo": photo, "doc": base64.b64encode(b"plain bytes").decode(), "caption": "hi"}, CallContext()))
    assert out["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    files = {f["field"]: f for f in out["files"]}
    assert base64.b64decode(files["photo"]["content"]) == b"\x89PNG-data"
    assert files["photo"]["filename"] == "p.png" and files["photo"]["contentType"] == "image/png"
    assert base64.b64decode(files["doc"]["content"]) == b"plain bytes"
    assert out["form"] == {"caption": ["hi"]}
    bad = rest(demo, [tool]).call_tool("echo", {"photo": "%%%not base64"}, CallContext())
    assert bad["isError"] and "base64" in result_text(bad)


def test_demo_avatar_upload_then_image_content(demo):
    tools = [
        {"name": "upload", "method": "POST", "endpoint": "{{ config.base }}/users/{email}/avatar",
         "args": [{"name": "email", "position": "path"}, {"name": "file", "position": "file"}]},
        {"name": "avatar", "endpoint": "{{ config.base }}/users/{email}/avatar",
         "args": [{"name": "email", "position": "path"}]},
    ]
    server = rest(demo, tools)
    png = b"\x89PNG\r\n\x1a\n" + b"fake-image"
    up = server.call_tool("upload", {"email": "grace@example.com", "file": {
        "name": "g.png", "content": base64.b64encode(png).decode(), "contentType": "image/png"}}, CallContext())
    assert up["isError"] is False, up
    got = server.call_tool("avatar", {"email": "grace@example.com"}, CallContext())
    assert got["content"] == [{"type": "image", "data": base64.b64encode(png).decode(), "mimeType": "image/png"}]


def test_templates_in_config_endpoint_headers_body_and_response(demo):
    tool = echo_tool(
        endpoint="{{ config.base }}/echo/{{ args.kind }}",
        headers={"Authorization": "Bearer {{ config.token }}", "X-User": "{{ request.headers['x-user'] }}",
                 "X-Absent": "{{ request.headers['x-nothing'] }}"},
        requestBody='{"name": "{{ args.name }}", "tags": {{ args.tags | tojson }}}',
        responseBody="{{ response.status }} {{ response.data.method }} {{ response.data.json.tags[1] }} "
                     "{{ response.headers['content-type'] }}",
        args=[{"name": "kind", "position": "path"}, {"name": "name", "position": "body"},
              {"name": "tags", "position": "body", "type": "array"}])
    server = rest(demo, [tool], config={"token": "{{ args.name }}-secret"})
    result = server.call_tool("echo", {"kind": "k", "name": "ann", "tags": ["a", "b"]},
                              CallContext(headers={"x-user": "u-7"}))
    assert result["isError"] is False, result
    assert result_text(result) == "200 POST b application/json"
    raw = rest(demo, [dict(tool, responseBody=None)], config={"token": "{{ args.name }}-secret"}).call_tool(
        "echo", {"kind": "k", "name": "ann", "tags": ["a", "b"]}, CallContext(headers={"x-user": "u-7"}))
    out = echoed(raw)
    assert out["path"] == "/echo/k"
    assert out["headers"]["authorization"] == "Bearer ann-secret"
    assert out["headers"]["x-user"] == "u-7"
    assert "x-absent" not in out["headers"]  # a header rendering empty is left out
    assert out["json"] == {"name": "ann", "tags": ["a", "b"]}


def test_template_failure_is_an_error_naming_the_field(demo):
    tool = echo_tool(requestBody="{{ args.x | nosuchfilter }}")
    result = rest(demo, [tool]).call_tool("echo", {}, CallContext())
    assert result["isError"] and "tools[echo].requestBody" in result_text(result)
    tool = echo_tool(headers={"X-A": "{{ args.missing.deeper() }}"})
    result = rest(demo, [tool]).call_tool("echo", {}, CallContext())
    assert result["isError"] and "tools[echo].headers.X-A" in result_text(result)


def test_output_schema_gives_structured_content_and_text_copy(demo):
    tool = {"name": "get", "endpoint": "{{ config.base }}/users/{email}", "outputSchema": {"type": "object"},
            "args": [{"name": "email", "position": "path"}]}
    result = rest(demo, [tool]).call_tool("get", {"email": "ada@example.com"}, CallContext())
    assert result["isError"] is False
    assert result["structuredContent"]["name"] == "Ada Lovelace"
    assert json.loads(result_text(result)) == result["structuredContent"]
    plain = rest(demo, [dict(tool, outputSchema=None)]).call_tool("get", {"email": "ada@example.com"}, CallContext())
    assert "structuredContent" not in plain and "Ada Lovelace" in result_text(plain)


def test_audio_and_text_content(extra):
    tools = [{"name": "audio", "endpoint": "{{ config.base }}/audio"},
             {"name": "final", "endpoint": "{{ config.base }}/final"}]
    server = rest(extra, tools)
    audio = server.call_tool("audio", {}, CallContext())
    assert audio["content"] == [{"type": "audio", "data": base64.b64encode(AUDIO).decode(), "mimeType": "audio/wav"}]
    assert server.call_tool("final", {}, CallContext())["content"] == [{"type": "text", "text": "final "}]


def test_http_errors_are_results_with_status_and_excerpt(demo, extra):
    tool = {"name": "status", "endpoint": "{{ config.base }}/status/{code}",
            "args": [{"name": "code", "position": "path", "type": "integer"}]}
    result = rest(demo, [tool]).call_tool("status", {"code": "404"}, CallContext())
    assert result["isError"] is True
    assert result_text(result) == f"HTTP 404 Not Found from GET {demo}/status/404: status 404 as requested"
    error = rest(extra, [{"name": "e", "endpoint": "{{ config.base }}/error?token=secret"}]).call_tool(
        "e", {}, CallContext())
    text = result_text(error)
    assert text.startswith(f"HTTP 500 Internal Server Error from GET {extra}/error: database exploded: zzz")
    assert "secret" not in text and len(text) < 600


def test_timeout_is_an_error_within_the_timeout(extra):
    server = rest(extra, [{"name": "hang", "endpoint": "{{ config.base }}/hang", "timeout": 0.5}])
    started = time.monotonic()
    result = server.call_tool("hang", {}, CallContext())
    elapsed = time.monotonic() - started
    assert result["isError"] is True
    assert result_text(result) == f"timed out after 0.5 s calling GET {extra}/hang"
    assert elapsed < 3


def test_refused_connection_is_an_error():
    port = free_port()
    server = rest(f"http://127.0.0.1:{port}", [{"name": "x", "endpoint": "{{ config.base }}/x", "retries": 1}])
    result = server.call_tool("x", {}, CallContext())
    assert result["isError"] and result_text(result) == f"connection refused calling GET http://127.0.0.1:{port}/x"


def test_response_size_limit(extra, demo):
    big = rest(extra, [{"name": "big", "endpoint": "{{ config.base }}/big", "maxResponseBytes": 100000}])
    result = big.call_tool("big", {}, CallContext())
    assert result["isError"] and "exceeds the limit of 100000 bytes" in result_text(result)
    fits = rest(extra, [{"name": "big", "endpoint": "{{ config.base }}/big", "maxResponseBytes": 300000}])
    assert len(result_text(fits.call_tool("big", {}, CallContext()))) == 4 * 65536
    sized = rest(demo, [{"name": "users", "endpoint": "{{ config.base }}/users", "maxResponseBytes": 10}])
    assert sized.call_tool("users", {}, CallContext())["isError"] is True


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_compressed_bodies_are_decoded(extra, coding):
    server = rest(extra, [{"name": "enc", "endpoint": "{{ config.base }}/encoded/" + coding,
                           "outputSchema": {"type": "object"}}])
    result = server.call_tool("enc", {}, CallContext())
    assert result["isError"] is False, result
    assert result["structuredContent"]["coding"] == coding


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_compression_bomb_is_limited(coding):
    import brotli
    import zstandard

    raw = b"\0" * 5_000_000
    data = {"gzip": gzip.compress, "br": brotli.compress, "zstd": zstandard.ZstdCompressor().compress}[coding](raw)
    with pytest.raises(ValueError, match="exceeds"):
        decode_body(data, coding, 1_000_000)
    assert decode_body(data, coding, 5_000_000) == raw


def test_redirects_are_followed(extra):
    result = rest(extra, [{"name": "r", "endpoint": "{{ config.base }}/redirect"}]).call_tool("r", {}, CallContext())
    assert result_text(result) == "final from=redirect"


def test_client_headers_reach_the_backend_only_when_allowed(demo, monkeypatch):
    ctx = CallContext(headers={"x-secret": "s3", "authorization": "Bearer client", "x-tenant": "t1"})
    out = echoed(rest(demo, [echo_tool()]).call_tool("echo", {}, ctx))
    assert "x-secret" not in out["headers"] and "authorization" not in out["headers"]
    monkeypatch.setenv("MCPGW_FORWARD_HEADERS", "X-Tenant")
    out = echoed(rest(demo, [echo_tool()]).call_tool("echo", {}, ctx))
    assert out["headers"]["x-tenant"] == "t1"
    assert "x-secret" not in out["headers"] and "authorization" not in out["headers"]


def test_keep_alive_connections_are_reused(demo):
    client = HttpClient()
    server = rest(demo, [{"name": "u", "endpoint": "{{ config.base }}/users"}], client=client)
    for _ in range(5):
        assert server.call_tool("u", {}, CallContext())["isError"] is False
    pools = list(client._pools.values())
    assert len(pools) == 1 and len(pools[0]) == 1  # one socket served all five calls
    client.close()


def test_prompts_of_the_document(demo):
    prompts = [{"name": "greet", "description": "Say hi", "arguments": [{"name": "who", "required": True}],
                "promptResponse": [{"role": "user", "content": {"type": "text", "text": "Greet {who}."}}]}]
    server = rest(demo, [], prompts=prompts)
    assert server.list_prompts()[0]["arguments"] == [{"name": "who", "description": "", "required": True}]
    assert server.get_prompt("greet", {"who": "Ann"})["messages"][0]["content"]["text"] == "Greet Ann."
    with pytest.raises(ValueError, match="who"):
        server.get_prompt("greet", {})


def test_unsupported_proxy_is_a_clear_error(demo):
    tool = {"name": "p", "endpoint": "{{ config.base }}/users", "proxy": {"host": "h", "port": 1, "type": "socks5"}}
    result = rest(demo, [tool]).call_tool("p", {}, CallContext())
    assert result["isError"] and "proxy" in result_text(result)


class RawServer:
    """A raw socket HTTP server that closes keep-alive connections after one response (as idle timeouts do).

    ``drop_first`` closes the first connection without answering. ``closed`` is set each time the server
    has closed a connection; ``connections`` counts accepted ones.
    """

    def __init__(self, *, drop_first: bool = False):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.drop_first = drop_first
        self.connections = 0
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                if not (self.drop_first and self.connections == 1):
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    body = f"conn {self.connections}".encode()
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                                 + str(len(body)).encode() + b"\r\n\r\n" + body)
            self.closed.set()

    def close(self):
        self.sock.close()


def test_idle_connection_closed_by_the_server_is_not_reused():
    server = RawServer()
    try:
        tools = [{"name": "get", "endpoint": "{{ config.base }}/x"},
                 {"name": "post", "method": "POST", "endpoint": "{{ config.base }}/x",
                  "args": [{"name": "a", "position": "body"}]}]
        rest_server = rest(f"http://127.0.0.1:{server.port}", tools, client=HttpClient())
        for index, name in enumerate(["get", "post", "post", "get"], start=1):
            server.closed.clear()
            result = rest_server.call_tool(name, {"a": 1} if name == "post" else {}, CallContext())
            assert result_text(result) == f"conn {index}", result
            assert server.closed.wait(5)  # the pooled socket is now dead; the next call must notice
    finally:
        server.close()


def test_retries_on_connection_errors_for_idempotent_methods_only():
    for method, retries, ok in [("GET", 1, True), ("GET", 0, False), ("POST", 1, False)]:
        server = RawServer(drop_first=True)
        try:
            tool = {"name": "t", "method": method, "endpoint": "{{ config.base }}/x", "retries": retries}
            result = rest(f"http://127.0.0.1:{server.port}", [tool], client=HttpClient()).call_tool(
                "t", {}, CallContext())
            if ok:
                assert result["isError"] is False and result_text(result) == "conn 2"
            else:
                assert result["isError"] is True
                assert result_text(result) == f"connection closed by the backend calling {method} " \
                                              f"http://127.0.0.1:{server.port}/x"
        finally:
            server.close()


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_verifies_the_certificate_of_the_original_host_name(tmp_path):
    import ssl

    cert, key = _self_signed(tmp_path)
    server = wsgi_server(_extra_app(threading.Event()))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = HttpClient(ssl_context=ssl.create_default_context(cafile=str(cert)))
        tool = {"name": "t", "endpoint": "{{ config.base }}/final?x=1"}
        good = rest(f"https://localhost:{server.server_port}", [tool], client=client).call_tool("t", {}, CallContext())
        assert good["isError"] is False and result_text(good) == "final x=1"
        # the same server by IP: the certificate does not name 127.0.0.1, so verification fails
        bad = rest(f"https://127.0.0.1:{server.server_port}", [tool], client=client).call_tool("t", {}, CallContext())
        assert bad["isError"] is True and "certificate" in result_text(bad).lower()
    finally:
        server.shutdown()
        server.server_close()


def test_the_call_deadline_shortens_the_tool_timeout(extra):
    server = rest(extra, [{"name": "hang", "endpoint": "{{ config.base }}/hang", "timeout": 30}])
    started = time.monotonic()
    result = server.call_tool("hang", {}, CallContext(deadline=started + 0.4))
    assert result["isError"] is True
    assert re.match(rf"timed out after 0\.[1-4]\d* s calling GET {extra}/hang$", result_text(result)), result
    assert time.monotonic() - started < 3


class DripServer:
    """A raw socket server that sends the headers at once, then the body one byte every ``interval`` seconds.

    ``chunked`` sends each byte as its own chunk. Stops dripping when the client hangs up or on :meth:`close`.
    """

    def __init__(self, *, chunked: bool, size: int = 60, interval: float = 0.1):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.chunked, self.size, self.interval = chunked, size, interval
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            framing = b"Transfer-Encoding: chunked" if self.chunked else b"Content-Length: " + str(self.size).encode()
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n" + framing + b"\r\n\r\n")
                for _ in range(self.size):
                    if self.stop.wait(self.interval):
                        return
                    conn.sendall(b"1\r\nx\r\n" if self.chunked else b"x")
                if self.chunked:
                    conn.sendall(b"0\r\n\r\n")
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_slow_body_cannot_outlast_the_tool_timeout(chunked):
    drip = DripServer(chunked=chunked)  # 60 bytes at 10 per second: 6 s for the whole body
    try:
        server = rest(f"http://127.0.0.1:{drip.port}", [{"name": "slow", "endpoint": "{{ config.base }}/x",
                                                          "timeout": 1}])
        started = time.monotonic()
        result = server.call_tool("slow", {}, CallContext())
        elapsed = time.monotonic() - started
        assert result["isError"] is True, result
        assert result_text(result) == f"timed out after 1 s calling GET http://127.0.0.1:{drip.port}/x"
        assert elapsed < 2.5, elapsed
    finally:
        drip.close()


def test_the_literal_decision_of_a_call_is_its_urls_authority_whatever_the_arguments():
    """A plain tool's authority is decided once (RestServer._prepare): it must be the one every call reaches."""
    from gateway_server.backends.guard import url_authority
    from gateway_server.backends.http import Response

    class Recorder:
        def __init__(self):
            self.seen = []

        def request(self, method, url, **kw):
            self.seen.append((url, kw["literal"], kw["literal_hosts"]))
            return Response(200, "OK", {"content-type": "text/plain"}, b"ok", url, method)

    path = [{"name": "v", "position": "path", "type": "string"}]
    raw = [{"name": "v", "position": "path", "type": "string", "raw": True}]
    tools = [
        {"name": "fixed", "endpoint": "{{ config.base }}/users/{v}", "args": path},
        {"name": "query", "endpoint": "http://127.0.0.1:8080?x={v}", "args": path},
        {"name": "userinfo", "endpoint": "http://me@127.0.0.1/{v}", "args": path},
        {"name": "raw", "endpoint": "http://127.0.0.1/files/{v}", "args": raw},
        {"name": "host_arg", "endpoint": "http://{v}/x", "args": path},
        {"name": "port_arg", "endpoint": "http://127.0.0.1:{v}/x", "args": path},
        {"name": "templated", "endpoint": "http://{{ args.v }}/x", "args": path},
    ]
    recorder = Recorder()
    server = rest("http://127.0.0.1:5236", tools, client=recorder)
    values = ["ada@example.com", "evil.example", "@evil.example", "evil.example:80/x", "a#@evil.example",
              "x/../../y?z=@evil.example", "127.0.0.1:5236", "8080"]
    for tool in tools:
        for value in values:
            server.call_tool(tool["name"], {"v": value}, CallContext())
    assert server.tools["fixed"].plain and server.tools["fixed"].authority == ("http", "127.0.0.1", 5236)
    assert server.tools["host_arg"].authority is None and not server.tools["templated"].plain
    assert len(recorder.seen) == len(tools) * len(values)
    for url, literal, literal_hosts in recorder.seen:
        assert literal == (url_authority(url) in literal_hosts), url
