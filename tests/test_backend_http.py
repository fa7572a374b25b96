"""The REST backends' HTTP exchange against raw recording servers: one deadline for the whole exchange,
no credentials across origins on redirects, damaged compressed bodies are errors, multipart parts stay intact."""

from __future__ import annotations

import base64
import gzip
import socket
import threading
import time
import zlib

import brotli
import pytest
import zstandard

from gateway_server.backends import CallContext, make_backend
from gateway_server.backends.rest import result_text
from tests.helpers import wait_for


class RecordingServer:
    """A raw HTTP/1.1 listener on loopback: records every request (head and body) and answers with ``respond``.

    ``respond(request_bytes, conn)`` writes the answer itself (so it may drip it); the default says 200 OK.
    """

    def __init__(self, respond=None):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[bytes] = []
        self.respond = respond or (lambda req, conn: conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                                                                  b"Connection: close\r\n\r\nok"))
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        with conn:
            conn.settimeout(10)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                self.respond(head + b"\r\n\r\n" + body, conn)
            except OSError:
                return

    def headers(self, index: int = -1) -> dict[str, str]:
        head = self.requests[index].split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
        return {line.split(":", 1)[0].strip().lower(): line.split(":", 1)[1].strip() for line in head}

    def close(self):
        self.stop.set()
        self.sock.close()


@pytest.fixture
def servers():
    made: list[RecordingServer] = []

    def make(respond=None) -> RecordingServer:
        server = RecordingServer(respond)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


def rest(tools, config):
    server = {"name": "svc", "config": config}
    doc = {"name": "t", "tenant": "default", "servers": [server], "tools": tools}
    return make_backend("rest", name="svc", server=server, tools=tools, document=doc)


# -- item 17: one deadline for the whole exchange ------------------------------------------------------------

def _drip(text: bytes, interval: float):
    def respond(_req, conn):
        for byte in text:
            time.sleep(interval)  # the backend's pace, not synchronisation
            conn.sendall(bytes([byte]))
    return respond


@pytest.mark.parametrize("part", ["status line", "headers"])
def test_a_backend_dripping_its_status_line_or_headers_cannot_outlast_the_tool_timeout(servers, part):
    answer = b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 40 + b"\r\nContent-Length: 0\r\n\r\n"
    if part == "headers":
        def respond(req, conn):
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            _drip(answer[17:], 0.2)(req, conn)
    else:
        respond = _drip(answer, 0.2)
    drip = servers(respond)
    server = rest([{"name": "slow", "endpoint": "{{ config.base }}/x", "timeout": 1}], {"base": drip.url})
    started = time.monotonic()
    result = server.call_tool("slow", {}, CallContext())
    elapsed = time.monotonic() - started
    assert result["isError"] is True, result
    assert result_text(result) == f"timed out after 1 s calling GET {drip.url}/x"
    assert elapsed < 1.5, elapsed


# -- item 15: credentials never follow a redirect to another origin -----------------------------------------

def test_a_redirect_to_another_port_carries_no_credentials(servers):
    landing = servers()

    def redirect(_req, conn):
        conn.sendall(f"HTTP/1.1 307 Temporary Redirect\r\nLocation: {landing.url}/landing\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n".encode())

    first = servers(redirect)
    tools = [{"name": "go", "method": "POST", "endpoint": "{{ config.base }}/start",
              "headers": {"Authorization": "Bearer s3cret-token", "Cookie": "sid=c00kie",
                          "X-API-Key": "{{ config.key }}", "X-Tenant-Secret": "t3nant",
                          "Proxy-Authorization": "Basic cHJveHk=", "Accept": "application/json"},
              "args": [{"name": "X-Arg-Token", "position": "header"}, {"name": "q", "position": "body"}]}]
    server = rest(tools, {"base": first.url, "key": "k3y-value", "landing": landing.url})
    result = server.call_tool("go", {"X-Arg-Token": "argt0ken", "q": "hello"}, CallContext())
    assert result["isError"] is False, result
    sent = first.headers()
    assert sent["authorization"] == "Bearer s3cret-token" and sent["x-api-key"] == "k3y-value"
    wait_for(lambda: landing.requests, timeout=5, what="the redirected request")
    followed = landing.headers()
    raw = landing.requests[-1]
    for secret in (b"s3cret-token", b"c00kie", b"k3y-value", b"t3nant", b"cHJveHk=", b"argt0ken"):
        assert secret not in raw, (secret, raw)
    assert {"authorization", "cookie", "x-api-key", "proxy-authorization", "x-tenant-secret",
            "x-arg-token"}.isdisjoint(followed)
    assert followed["accept"] == "application/json" and followed["content-type"] == "application/json"
    assert b'"q": "hello"' in raw  # a 307 keeps the body


def test_a_redirect_within_the_origin_keeps_the_headers(servers):
    def respond(req, conn):
        if b" /start " in req.split(b"\r\n", 1)[0]:
            conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    backend = servers(respond)
    tools = [{"name": "go", "endpoint": "{{ config.base }}/start", "headers": {"Authorization": "Bearer same"}}]
    result = rest(tools, {"base": backend.url}).call_tool("go", {}, CallContext())
    assert result["isError"] is False, result
    assert backend.headers(-1)["authorization"] == "Bearer same"


# -- item 14: damaged compressed bodies are errors; multipart parts cannot be broken out of ------------------

BODY = b'{"users": ["' + b"ann" * 2000 + b'"]}'


def _compressed(coding: str) -> bytes:
    return {"gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
            "zstd": zstandard.ZstdCompressor().compress}[coding](BODY)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
@pytest.mark.parametrize("damage", ["truncated", "intact"])
def test_a_truncated_compressed_body_is_an_error_not_a_partial_result(servers, coding, damage):
    data = _compressed(coding)
    if damage == "truncated":
        data = data[: len(data) * 2 // 3]

    def respond(_req, conn):
        conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: {coding}\r\n"
                     f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)

    backend = servers(respond)
    result = rest([{"name": "get", "endpoint": "{{ config.base }}/users"}], {"base": backend.url}) \
        .call_tool("get", {}, CallContext())
    if damage == "intact":
        assert result["isError"] is False and result_text(result) == BODY.decode()
    else:
        assert result["isError"] is True, result_text(result)[:200]
        assert result_text(result) == (f"cannot decode the {coding} body of GET {backend.url}/users: "
                                       f"the {coding} stream is truncated")


UPLOAD = [{"name": "upload", "method": "POST", "endpoint": "{{ config.base }}/upload",
           "args": [{"name": "file", "position": "file"}, {"name": "note", "position": "form-data"}]}]


@pytest.mark.parametrize("kind", ["text/plain\r\nX-Injected: yes", "text/plain\nX-Injected: yes",
                                  'text/plain"; x="1', "text/plain\r\n\r\n--evil", "", "a" * 300 + "/b"])
def test_a_file_content_type_that_could_break_the_part_is_refused(servers, kind):
    backend = servers()
    content = base64.b64encode(b"data").decode()
    file = {"name": "a.txt", "content": content, "contentType": kind}
    result = rest(UPLOAD, {"base": backend.url}).call_tool("upload", {"file": file, "note": "n"}, CallContext())
    if kind == "":  # no content type: the default one
        assert result["isError"] is False
        assert b"Content-Type: application/octet-stream\r\n\r\ndata" in backend.requests[-1]
        return
    assert result["isError"] is True
    assert "argument 'file': contentType" in result_text(result) and "is not a media type" in result_text(result)
    assert backend.requests == []


def test_file_names_are_escaped_inside_the_part_header(servers):
    backend = servers()
    content = base64.b64encode(b"data").decode()
    file = {"name": 'a"b\r\nX-Injected: yes\r\n\r\nc.txt', "content": content, "contentType": "text/plain; charset=utf-8"}
    result = rest(UPLOAD, {"base": backend.url}).call_tool("upload", {"file": file, "note": "n"}, CallContext())
    assert result["isError"] is False, result
    raw = backend.requests[-1]
    assert b'filename="a%22b%0D%0AX-Injected: yes%0D%0A%0D%0Ac.txt"\r\nContent-Type: text/plain; charset=utf-8' \
        b"\r\n\r\ndata\r\n" in raw
    assert b"\r\nX-Injected" not in raw
