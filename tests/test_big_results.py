"""Big REST results stream through the gateway: a pass-through body longer than its first window is read from its
backend connection as it is written to the client, within the size limit, and never poisons the connection pool."""

from __future__ import annotations

import gzip
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from gateway_server.backends.content import StreamedText
from gateway_server.backends.http import ConnectFailed, HttpClient, TooLarge
from gateway_server.mcp import jsonrpc
from gateway_server.transports import base
from tests.fixtures_gateway import seed
from tests.helpers import wait_for

WINDOW = 1 << 20
# Quotes, backslashes, control characters, 2-, 3- and 4-byte characters, U+2028 and an invalid byte: an odd-sized
# pattern, so characters and escapes straddle every read and piece boundary.
PATTERN = 'a"b\\c\n\t\x01 é€😀\u2028 '.encode() + b"\xff" + b"0123456789"
BODY = PATTERN * (3_000_000 // len(PATTERN) + 1)
TEXT = BODY.decode("utf-8", errors="replace")
HALF = len(BODY) // 2
ENCODED = {"/gzip": ("gzip", gzip.compress(BODY)),
           "/gzip-members": ("gzip", gzip.compress(BODY[:HALF]) + gzip.compress(BODY[HALF:])),
           "/deflate": ("deflate", zlib.compress(BODY)),
           "/raw-deflate": ("deflate", (lambda c: c.compress(BODY) + c.flush())(zlib.compressobj(wbits=-zlib.MAX_WBITS))),
           "/gzip-cut": ("gzip", gzip.compress(BODY)[:-200]),
           "/gzip-bomb": ("gzip", gzip.compress(b"\0" * 5_000_000))}
SMALL = b'{"a": "' + b"x" * 3000 + b'"}'
ENCODED.update({  # short bodies: read whole with a window or without, to the same answer or error
    "/small-gzip": ("gzip", gzip.compress(SMALL)),
    "/small-gzip-members": ("gzip", gzip.compress(SMALL[:100]) + gzip.compress(SMALL[100:])),
    "/small-gzip-cut": ("gzip", gzip.compress(SMALL)[:-10]),
    "/small-gzip-garbage": ("gzip", gzip.compress(SMALL) + b"junk"),
    "/small-deflate": ("deflate", zlib.compress(SMALL)),
    "/small-deflate-garbage": ("deflate", zlib.compress(SMALL) + b"junk"),
    "/small-deflate-cut": ("deflate", zlib.compress(SMALL)[:-5]),
    "/small-not-gzip": ("gzip", SMALL)})
LIMIT = 8_000_000
SMALL_LIMIT = 2_000_000  # below len(BODY)


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client (the gateway) closing a body early is what some tests do


class _Backend:
    """A keep-alive HTTP/1.1 backend in this process; ``connections`` counts the connections it accepted and
    ``events`` records what its handlers saw (an answer cut by the other side)."""

    def __init__(self):
        self.connections = 0
        self.events: list[str] = []
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                backend.connections += 1

            def do_GET(self):  # noqa: N802 - http.server's spelling
                path, _, query = self.path.partition("?")
                if path == "/text":
                    self._whole(BODY, "text/plain; charset=utf-8")
                elif path == "/utf16":
                    self._whole(TEXT.encode("utf-16"), "text/plain; charset=utf-16")
                elif path in ENCODED:
                    coding, data = ENCODED[path]
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Encoding", coding)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif path == "/small":
                    self._whole(b"small answer", "text/plain")
                elif path == "/chunked":
                    self._head(chunked=True)
                    for i in range(0, len(BODY), 100_000):
                        self._chunk(BODY[i:i + 100_000])
                    self.wfile.write(b"0\r\n\r\n")
                elif path == "/dies":  # declares the whole body, sends half, hangs up
                    self._head(length=len(BODY))
                    self.wfile.write(BODY[:len(BODY) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif path == "/endless":  # until the other side goes away
                    self._head(chunked=True)
                    try:
                        while True:
                            self._chunk(PATTERN * 1000)
                    except OSError:
                        backend.events.append(f"{path} cut")
                        self.close_connection = True
                else:
                    self._whole(b"nothing here", "text/plain", status=404)

            def _head(self, *, length=None, chunked=False, status=200, kind="text/plain; charset=utf-8"):
                self.send_response(status)
                self.send_header("Content-Type", kind)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    self.send_header("Content-Length", str(length))
                self.end_headers()

            def _whole(self, body, kind, status=200):
                self._head(length=len(body), status=status, kind=kind)
                self.wfile.write(body)

            def _chunk(self, data):
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

            def log_message(self, *args):
                pass

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def backend():
    server = _Backend()
    yield server
    server.close()


def _pooled(client: HttpClient) -> int:
    return sum(len(pool) for pool in client._pools.values())


# -- the client: a window, then the rest on its connection ------------------------------------------------------

@pytest.mark.parametrize("path", ["/text", "/chunked", "/utf16", "/gzip", "/gzip-members", "/deflate"])
def test_a_long_body_is_read_as_it_comes_and_its_connection_pooled_at_its_end(backend, path):
    client = HttpClient()
    try:
        resp = client.request("GET", backend.url + path, literal=True, max_bytes=LIMIT, window=WINDOW)
        assert resp.more is not None and WINDOW <= len(resp.body) < len(BODY)  # decoded, when compressed
        assert _pooled(client) == 0  # the rest is still on the connection
        assert StreamedText(resp).read() == TEXT  # decoded piece by piece as the whole body would be
        assert _pooled(client) == 1
        before = backend.connections
        assert client.request("GET", backend.url + "/small", literal=True, window=WINDOW).body == b"small answer"
        assert backend.connections == before  # the pooled connection served the next request
    finally:
        client.close()


def test_a_body_within_the_window_and_a_finished_one_are_complete(backend):
    client = HttpClient()
    try:
        small = client.request("GET", backend.url + "/small", literal=True, window=WINDOW)
        assert small.more is None and small.body == b"small answer"
        resp = client.request("GET", backend.url + "/chunked", literal=True, max_bytes=LIMIT, window=WINDOW)
        assert resp.finish().body == BODY and resp.more is None
        assert _pooled(client) == 1
    finally:
        client.close()


def test_a_body_over_the_limit_after_the_window_is_refused_and_not_pooled(backend):
    client = HttpClient()
    try:
        resp = client.request("GET", backend.url + "/chunked", literal=True, max_bytes=SMALL_LIMIT, window=WINDOW)
        with pytest.raises(TooLarge, match=f"exceeds the limit of {SMALL_LIMIT} bytes"):
            StreamedText(resp).read()
        assert _pooled(client) == 0
        with pytest.raises(TooLarge):  # declared: refused before any of it is read
            client.request("GET", backend.url + "/text", literal=True, max_bytes=SMALL_LIMIT, window=WINDOW)
    finally:
        client.close()


@pytest.mark.parametrize("path", [path for path in ENCODED if path.startswith("/small-")])
def test_a_short_compressed_body_reads_the_same_with_a_window(backend, path):
    def outcome(**window):
        client = HttpClient()
        try:
            resp = client.request("GET", backend.url + path, literal=True, **window)
            assert resp.more is None
            return resp.body
        except ConnectFailed as exc:
            return str(exc)
        finally:
            client.close()

    whole = outcome()
    assert outcome(window=WINDOW) == whole
    assert whole == SMALL or "cannot decode" in whole


def test_a_raw_deflate_body_is_decoded_as_it_comes(backend):
    client = HttpClient()
    try:
        resp = client.request("GET", backend.url + "/raw-deflate", literal=True, max_bytes=LIMIT, window=WINDOW)
        assert resp.more is not None and StreamedText(resp).read() == TEXT
    finally:
        client.close()


@pytest.mark.parametrize("path, limit, error, why", [
    ("/gzip-cut", LIMIT, ConnectFailed, "cannot decode the gzip body .*: the gzip stream is truncated"),
    ("/gzip-bomb", SMALL_LIMIT, TooLarge, f"exceeds the limit of {SMALL_LIMIT}")])
def test_a_compressed_body_cut_short_or_too_large_decoded_is_an_error_not_a_partial_text(backend, path, limit, error,
                                                                                         why):
    client = HttpClient()
    try:
        resp = client.request("GET", backend.url + path, literal=True, max_bytes=limit, window=WINDOW)
        assert resp.more is not None
        with pytest.raises(error, match=why):
            StreamedText(resp).read()
    finally:
        client.close()


def test_a_backend_dying_mid_body_is_an_error_and_leaves_no_pooled_connection(backend):
    client = HttpClient()
    try:
        resp = client.request("GET", backend.url + "/dies", literal=True, max_bytes=LIMIT, window=WINDOW)
        with pytest.raises(ConnectFailed, match="connection broken"):
            StreamedText(resp).read()
        assert _pooled(client) == 0
        resp = client.request("GET", backend.url + "/text", literal=True, max_bytes=LIMIT, window=WINDOW)
        assert StreamedText(resp).read() == TEXT
    finally:
        client.close()


def test_a_body_given_up_early_closes_its_connection(backend):
    client = HttpClient()
    try:
        resp = client.request("GET", backend.url + "/text", literal=True, max_bytes=LIMIT, window=WINDOW)
        text = StreamedText(resp)
        next(text.pieces())
        text.close()
        assert _pooled(client) == 0
    finally:
        client.close()


# -- the writer: the same bytes as the whole answer, sent as they come -------------------------------------------

class _Pieces(jsonrpc.Streamed):
    def __init__(self, text: str, size: int, fail_after: int | None = None):
        self.text, self.size, self.fail_after, self.closed = text, size, fail_after, False

    def pieces(self):
        for n, i in enumerate(range(0, len(self.text), self.size)):
            if self.fail_after is not None and n >= self.fail_after:
                raise ConnectFailed("connection broken reading the response of GET http://backend/x")
            yield self.text[i:i + self.size]

    def close(self):
        self.closed = True


def _message(text):
    return {"jsonrpc": "2.0", "id": 7, "result": {"content": [{"type": "text", "text": "first"},
                                                              {"type": "text", "text": text}],
                                                  "isError": False, "_meta": {"note": "x" * 100}}}


@pytest.mark.parametrize("size", [1, 7, 65536])
def test_a_streamed_text_goes_out_as_the_whole_answer_would(size):
    text = TEXT[:200_000] + "\ud800 tail"  # a lone surrogate is written as U+FFFD, as dumps writes it
    sent: dict = {}
    body = b"".join(base.respond_json(lambda status, headers: sent.update(headers), 200,
                                      _message(_Pieces(text, size))))
    assert body == jsonrpc.dumps(_message(text))
    assert "Content-Length" not in sent  # not known before the end: chunked
    assert jsonrpc.dumps(_message(_Pieces(text, size))) == body  # any other writer reads it whole


def test_a_streamed_text_that_fails_cuts_the_answer_and_closes_its_source():
    pieces = _Pieces(TEXT, 1000, fail_after=3)
    body = base.respond_json(lambda status, headers: None, 200, _message(pieces))
    sent = []
    with pytest.raises(ConnectionResetError, match="answer cut off: connection broken"):
        for chunk in body:
            sent.append(chunk)
    body.close()
    assert pieces.closed and sent  # some bytes went out, never the end of the answer
    assert not b"".join(sent).endswith(b"}")


# -- through the gateway ------------------------------------------------------------------------------------------

PREFIX = "/big"
MODERN = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
          "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"}


@pytest.fixture(scope="module")
def gw(backend, tmp_path_factory):
    from tests.fixtures_gateway import run_gateway
    from tests.helpers import Procs

    tmp = tmp_path_factory.mktemp("big")
    tools = [{"name": name, "method": "GET", "endpoint": "{{ config.base }}" + path, "maxResponseBytes": limit,
              "timeout": 30}
             for name, path, limit in [("text", "/text", LIMIT), ("chunked", "/chunked", LIMIT), ("gzip", "/gzip", LIMIT),
                                       ("chunked_over", "/chunked", SMALL_LIMIT), ("text_over", "/text", SMALL_LIMIT),
                                       ("dies", "/dies", LIMIT), ("endless", "/endless", 10**12)]]
    doc = {"name": "big", "tenant": "default", "routers": [{"server": "s", "prefix": PREFIX}],
           "servers": [{"name": "s", "config": {"base": backend.url}}], "tools": tools}
    url = f"sqlite:///{tmp / 'gw.db'}"
    revision = seed(url, doc)
    with Procs(tmp) as procs:
        yield run_gateway(procs, url, revision=revision, env={"MCPGW_LOG_LEVEL": "INFO"})


def _modern(gw, tool: str, **kwargs) -> requests.Response:
    message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}}
    return requests.post(gw.mcp_url(PREFIX), data=json.dumps(message), headers={**MODERN, "Mcp-Name": tool},
                         timeout=60, **kwargs)


def _legacy(gw, tool: str) -> requests.Response:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    init = requests.post(gw.mcp_url(PREFIX), json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers=headers, timeout=10)
    headers["Mcp-Session-Id"] = init.headers["Mcp-Session-Id"]
    return requests.post(gw.mcp_url(PREFIX), json={"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                                   "params": {"name": tool, "arguments": {}}},
                         headers=headers, timeout=60)


@pytest.mark.parametrize("era", ["modern", "legacy"])
@pytest.mark.parametrize("tool", ["text", "chunked", "gzip"])
def test_a_big_rest_result_reaches_the_client_exactly_as_it_streams(gw, era, tool):
    resp = (_modern if era == "modern" else _legacy)(gw, tool)
    assert resp.status_code == 200
    assert "Content-Length" not in resp.headers  # streamed: the gateway did not hold it to count it
    result = resp.json()["result"]
    expected = {"content": [{"type": "text", "text": TEXT}], "isError": False}
    if era == "modern":
        expected["resultType"] = "complete"
    assert {k: v for k, v in result.items() if k != "_meta"} == expected


def test_a_declared_body_over_the_limit_is_a_clear_error(gw):
    result = _modern(gw, "text_over").json()["result"]
    assert result["isError"] is True
    assert f"exceeds the limit of {SMALL_LIMIT} bytes (maxResponseBytes)" in result["content"][0]["text"]


@pytest.mark.parametrize("tool, why", [("chunked_over", f"exceeds the limit of {SMALL_LIMIT} bytes"),
                                       ("dies", "connection broken reading the response")])
def test_a_body_failing_after_the_window_cuts_the_answer_and_the_next_call_works(gw, tool, why):
    with pytest.raises(requests.exceptions.ChunkedEncodingError):  # truncated, never a complete wrong answer
        _modern(gw, tool)
    wait_for(lambda: why in gw.proc.output() and "answer cut off" in gw.proc.output(),
             timeout=10, what="the gateway's log of the cut answer")
    for _ in range(2):  # the pool holds no half-read connection
        assert _modern(gw, "text").json()["result"]["content"][0]["text"] == TEXT


def test_a_client_hanging_up_mid_answer_closes_the_backend_connection(gw, backend):
    backend.events.clear()
    resp = _modern(gw, "endless", stream=True)
    received = 0
    for chunk in resp.iter_content(65536):
        received += len(chunk)
        if received > 4 * WINDOW:
            break
    resp.close()
    wait_for(lambda: "/endless cut" in backend.events, timeout=20, what="the backend connection closed")
    assert _modern(gw, "text").json()["result"]["content"][0]["text"] == TEXT
