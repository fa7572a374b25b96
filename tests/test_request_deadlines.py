"""Read deadlines under ``mcpgw serve``: half-sent requests are closed, short bodies get 400, /healthz answers.

Real sockets against a real gateway whose ``header_timeout``/``body_timeout`` are one second.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests

from tests.fixtures_gateway import DEMO_PREFIX, demo_document, run_backend, run_gateway, seed
from tests.helpers import Procs, python, wait_for

DEADLINE = 1.0
HALF_SENT = 50


@pytest.fixture(scope="module")
def quick_gateway(tmp_path_factory):
    """A gateway whose header and body deadlines are :data:`DEADLINE` seconds."""
    with Procs(tmp_path_factory.mktemp("deadlines")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, demo_document(run_backend(procs)))
        yield run_gateway(procs, url, revision=revision,
                          env={"MCPGW_HEADER_TIMEOUT": str(DEADLINE), "MCPGW_BODY_TIMEOUT": str(DEADLINE)})


def connect(gw) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    return sock


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server has closed the connection (EOF, after any answer it sent)."""
    sock.settimeout(0.05)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:  # reset: closed too
        return True


def read_response(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while b"\r\n\r\n" not in data or not data.endswith((b"}", b"\r\n\r\n")):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    return data


def test_half_sent_requests_are_closed_after_the_deadline_and_healthz_answers(quick_gateway):
    gw = quick_gateway
    socks = []
    try:
        started = time.monotonic()
        for i in range(HALF_SENT):
            sock = connect(gw)
            if i % 3 == 0:
                sock.sendall(b"POST " + DEMO_PREFIX.encode() + b"/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end
            elif i % 3 == 1:
                sock.sendall(b"GET /healthz HT")  # not even a whole request line
            else:  # headers done, body promised but never sent
                sock.sendall(b"POST " + DEMO_PREFIX.encode() + b"/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"jsonrpc\"")
            socks.append(sock)
        # /healthz answers at once while they are held
        resp = requests.get(f"{gw.base}/healthz", timeout=2)
        assert resp.status_code == 200 and resp.json() == {"status": "ok"}

        open_now = [s for s in socks if not closed_by_server(s)]
        if time.monotonic() - started < DEADLINE * 0.8:
            assert len(open_now) == HALF_SENT  # nothing is closed before its deadline

        def all_closed():
            assert requests.get(f"{gw.base}/healthz", timeout=2).status_code == 200
            return all(closed_by_server(s) for s in socks)

        wait_for(all_closed, timeout=DEADLINE + 6, what="every half-sent request closed by the gateway")
        assert time.monotonic() - started < DEADLINE + 6
    finally:
        for sock in socks:
            sock.close()
    assert requests.get(f"{gw.base}/healthz", timeout=2).status_code == 200


def test_body_shorter_than_content_length_is_400_within_the_deadline(quick_gateway):
    gw = quick_gateway
    head = (b"POST " + DEMO_PREFIX.encode() + b"/mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n"
            b"Content-Length: 1000\r\n\r\n")
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'

    # the client keeps the connection open and waits: 400 once the deadline passes
    sock = connect(gw)
    try:
        started = time.monotonic()
        sock.sendall(head + body)
        answer = read_response(sock, DEADLINE + 5)
        elapsed = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"-32700" in answer and b"did not arrive" in answer
        assert elapsed < DEADLINE + 3
        wait_for(lambda: closed_by_server(sock), timeout=DEADLINE + 3, what="connection closed after the 400")
    finally:
        sock.close()

    # the client ends its side early: 400 at once (it was a 500 before)
    sock = connect(gw)
    try:
        started = time.monotonic()
        sock.sendall(head + body)
        sock.shutdown(socket.SHUT_WR)
        answer = read_response(sock, DEADLINE + 5)
        assert answer.startswith(b"HTTP/1.1 400"), answer
        assert b"ended" in answer or b"did not arrive" in answer
        assert time.monotonic() - started < DEADLINE + 3
    finally:
        sock.close()
    assert requests.get(f"{gw.base}/healthz", timeout=2).status_code == 200


def test_complete_requests_on_kept_alive_connections_still_work(quick_gateway):
    gw = quick_gateway
    with requests.Session() as http:
        for _ in range(3):
            assert http.get(f"{gw.base}/healthz", timeout=2).status_code == 200
        resp = http.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
            headers={"Accept": "application/json, text/event-stream"}, timeout=5)
        assert resp.status_code == 200 and resp.headers["Mcp-Session-Id"]


def test_the_gateway_raises_its_open_files_limit_to_the_hard_limit(procs, sqlite_url):
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard limit on open files is {hard}: nothing to raise")
    seed(sqlite_url)
    # started with a soft limit of 256, as a service manager or shell may leave it
    command = ["sh", "-c", f"ulimit -Sn 256 && exec {python()} -m gateway_server --port {{port}}"]
    gw = run_gateway(procs, sqlite_url, command=command)
    limits = Path(f"/proc/{gw.proc.popen.pid}/limits").read_text()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    soft, hard_seen = line.split()[3:5]
    assert soft == hard_seen and soft != "256", line
