"""The keep-alive pool under the Streamable HTTP transport's POSTs (mcpgw_sdk.http_pool)."""

from __future__ import annotations

import http.server
import threading

import pytest

from mcpgw_sdk.http_pool import Pool, Refused


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append((self.client_address, self.headers, body))  # any case
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"data: one\n\n", b"data: two\n\n"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        answer = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.path == "/close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.seen = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _post(pool: Pool, path: str = "/mcp", headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    resp = pool.request("POST", path, headers or {"Content-Type": "application/json"}, b"{}", read_timeout=5)
    try:
        return resp.status, resp.read()
    finally:
        resp.release_conn()


def test_posts_share_one_keep_alive_connection(server):
    pool = Pool(f"http://127.0.0.1:{server.server_port}/mcp")
    assert [_post(pool) for _ in range(3)] == [(200, b'{"ok":true}')] * 3
    assert len({address for address, _, _ in server.seen}) == 1
    assert server.seen[0][1]["Host"] == f"127.0.0.1:{server.server_port}"
    pool.close()


def test_a_connection_the_server_closes_is_not_reused(server):
    pool = Pool(f"http://127.0.0.1:{server.server_port}/mcp")
    assert _post(pool, "/close")[0] == 200  # Connection: close: not pooled
    assert _post(pool)[0] == 200
    assert len({address for address, _, _ in server.seen}) == 2


def test_chunked_answers_read_to_their_end_and_keep_the_connection(server):
    pool = Pool(f"http://127.0.0.1:{server.server_port}/mcp")
    status, body = _post(pool, "/chunked")
    assert (status, body) == (200, b"data: one\n\ndata: two\n\n")
    assert _post(pool)[0] == 200
    assert len({address for address, _, _ in server.seen}) == 1


@pytest.mark.parametrize("name, value", [("X-Up", "a\r\nX-Injected: 1"), ("X-Up", "a\nb"), ("Bad Name", "v")])
def test_a_header_that_would_break_the_request_is_refused_unsent(server, name, value):
    pool = Pool(f"http://127.0.0.1:{server.server_port}/mcp")
    with pytest.raises(ValueError):
        pool.request("POST", "/mcp", {name: value}, b"{}", read_timeout=5)
    assert server.seen == []


def test_the_connector_decides_where_to_connect(server):
    asked = []

    def connector(scheme: str, host: str, port: int) -> list[str]:
        asked.append((scheme, host, port))
        if host == "refused.example":
            raise PermissionError("refused: not allowed here")
        return ["127.0.0.1"]

    pool = Pool(f"http://upstream.example:{server.server_port}/mcp", connector=connector)
    assert _post(pool)[0] == 200
    assert server.seen[0][1]["Host"] == f"upstream.example:{server.server_port}"  # the name, not the address
    with pytest.raises(Refused, match="refused: not allowed here"):
        Pool(f"http://refused.example:{server.server_port}/mcp", connector=connector).request(
            "POST", "/mcp", {}, b"{}", read_timeout=5)
    assert asked == [("http", "upstream.example", server.server_port),
                     ("http", "refused.example", server.server_port)]
    assert len(server.seen) == 1


def test_default_headers_yield_to_given_ones_and_the_framing_stays_the_pools(server):
    pool = Pool(f"http://127.0.0.1:{server.server_port}/mcp")
    assert _post(pool)[0] == 200
    assert _post(pool, headers={"host": "virtual.example", "User-Agent": "mine", "Content-Length": "999"})[0] == 200
    first, second = (headers for _, headers, _ in server.seen)
    assert first["Accept-Encoding"] == "identity" and first["User-Agent"] == "mcpgw-sdk"
    assert (second["Host"], second["User-Agent"], second["Content-Length"]) == ("virtual.example", "mine", "2")
    assert second["Accept-Encoding"] == "identity"
