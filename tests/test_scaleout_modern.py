"""Scale-out of MCP 2026-07-28 without Redis: any worker or replica serves any modern request.

``gunicorn -k gevent -w 2`` on SQLite and two ``python -m gateway_server`` replicas on one PostgreSQL
database, all with ``MCPGW_REDIS_URL`` empty (sessions in each process's memory). Modern requests need
no session, so every one succeeds wherever it lands; each process tells its own ``subscriptions/listen``
streams about a config change from its own reloader (docs/eras.md).

Which gunicorn worker served a connection is read from Linux's ``/proc``: the worker holding the
server end of the test's TCP connection.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from pathlib import Path

import pytest

from tests.fixtures_gateway import DEMO_PREFIX, demo_document, gunicorn_path, migrated_store, run_backend, run_gateway
from tests.helpers import Procs, unavailable, wait_for
from tests.test_modern import body, headers_for, send
from tests.test_modern_streams import NEW_TOOL, PostStream, _with_new_tool

NO_REDIS = {"MCPGW_REDIS_URL": "", "MCPGW_SSE_HEARTBEAT": "1"}
CALLS = 40
LIST_CHANGED_DEADLINE = 30  # each process reloads on its own poll (every second here); generous for 2 busy cores
USERS = (("ada@example.com", "Ada Lovelace"), ("alan@example.com", "Alan Turing"))


def _linux_proc():
    if not sys.platform.startswith("linux") or not Path("/proc/self/net/tcp").exists():
        unavailable("telling gunicorn workers apart reads Linux /proc")


def _workers(master: int) -> set[int]:
    """The pids whose parent is ``master`` (gunicorn's workers)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                out.add(int(entry))
    return out


def _socket_inodes(server_port: int, client_port: int) -> set[str]:
    """Inodes of the server end of the loopback connection ``client_port`` → ``server_port``."""
    inodes = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == server_port and int(remote.rsplit(":", 1)[1], 16) == client_port \
                    and inode != "0":
                inodes.add(inode)
    return inodes


def _owner(pids: set[int], server_port: int, client_port: int) -> int | None:
    """The pid among ``pids`` holding the server end of the connection from ``client_port``."""
    wanted = {f"socket:[{inode}]" for inode in _socket_inodes(server_port, client_port)}
    if not wanted:
        return None
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in wanted:
                    return pid
            except OSError:
                continue
    return None


def _call(email: str, i: int) -> dict:
    return body("tools/call", {"name": "get_user", "arguments": {"email": email}}, id=i)


def _call_on_fresh_connection(port: int, message: dict, workers: set[int] | None = None):
    """POST ``message`` over a new connection; ``(status, headers, json, pid)`` with the serving worker's pid."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.connect()
        client_port = conn.sock.getsockname()[1]
        payload = json.dumps(message).encode()
        conn.request("POST", f"{DEMO_PREFIX}/mcp", payload, headers_for(message))
        resp = conn.getresponse()
        data = resp.read()
        # HTTP/1.1 keep-alive: the worker still holds the connection after answering
        pid = wait_for(lambda: _owner(workers, port, client_port), timeout=5, what="the worker holding the connection") \
            if workers else None
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(data), pid
    finally:
        conn.close()


def _assert_called(status: int, headers: dict, answer: dict, i: int, name: str) -> None:
    assert status == 200, answer
    assert "mcp-session-id" not in headers
    assert answer["id"] == i and answer["result"]["resultType"] == "complete", answer
    assert name in answer["result"]["content"][0]["text"]


def _listen(base_url: str, id) -> PostStream:
    stream = PostStream(f"{base_url}{DEMO_PREFIX}/mcp",
                        body("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, id=id))
    assert stream.resp.status_code == 200, stream.resp.text
    assert "Mcp-Session-Id" not in stream.resp.headers
    ack = stream.next_message(timeout=15)
    assert ack["method"] == "notifications/subscriptions/acknowledged", ack
    assert ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == id
    return stream


def _assert_list_changed(stream: PostStream, id) -> None:
    note = stream.next_message(timeout=LIST_CHANGED_DEADLINE)
    assert note == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                    "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": id}}}, note


def _client_port(stream: PostStream) -> int:
    return stream.resp.raw._connection.sock.getsockname()[1]


def _tool_names(url: str) -> list[str]:
    return [t["name"] for t in send(url, body("tools/list")).json()["result"]["tools"]]


def test_gunicorn_two_workers_without_redis(tmp_path):
    _linux_proc()
    gunicorn = gunicorn_path()
    with Procs(tmp_path) as procs:
        backend = run_backend(procs)
        url = f"sqlite:///{tmp_path / 'gw.db'}"
        store = migrated_store(url)
        streams: list[tuple[str, PostStream]] = []
        try:
            store.save_document(demo_document(backend))
            gw = run_gateway(procs, url, env=NO_REDIS, revision=store.revision(), name="gunicorn",
                             command=[gunicorn, "-k", "gevent", "-w", "2", "--graceful-timeout", "2",
                                      "-b", "127.0.0.1:{port}", "gateway_server.wsgi:app"])
            workers = wait_for(lambda: (lambda w: w if len(w) == 2 else None)(_workers(gw.proc.popen.pid)),
                               timeout=15, what="gunicorn's two workers")

            served: dict[int, int] = {}
            for i in range(CALLS):
                email, name = USERS[i % 2]
                status, headers, answer, pid = _call_on_fresh_connection(gw.port, _call(email, i), workers)
                _assert_called(status, headers, answer, i, name)
                served[pid] = served.get(pid, 0) + 1
            assert set(served) == workers, f"one worker served all {CALLS} calls: {served}"

            # listen streams on separate connections until two different workers hold one
            holders: dict[int, str] = {}
            for n in range(12):
                sub_id = f"listen-{n}"
                stream = _listen(gw.base, sub_id)
                streams.append((sub_id, stream))
                pid = wait_for(lambda s=stream: _owner(workers, gw.port, _client_port(s)), timeout=5,
                               what="the worker holding the listen stream")
                holders.setdefault(pid, sub_id)
                if len(holders) == 2:
                    break
            assert set(holders) == workers, f"every listen stream landed on one worker: {holders}"

            store.save_document(_with_new_tool(backend))  # one config write, through the store
            for sub_id, stream in streams:  # every stream, on either worker, hears of it with its own id
                _assert_list_changed(stream, sub_id)
            assert NEW_TOOL["name"] in _tool_names(gw.mcp_url())
        finally:
            for _, stream in streams:
                stream.close()
            store.close()


@pytest.fixture
def postgresql_url(tmp_path):
    """A fresh PostgreSQL database (skipped locally, failed under CI, when PostgreSQL is down); dropped after."""
    from tests.conftest import make_database

    url, drop = make_database("postgresql", tmp_path)
    yield url
    drop()


def test_two_replicas_on_postgresql_without_redis(tmp_path, postgresql_url):
    with Procs(tmp_path) as procs:
        backend = run_backend(procs)
        store = migrated_store(postgresql_url)
        streams: list[tuple[str, PostStream]] = []
        try:
            store.save_document(demo_document(backend))
            revision = store.revision()
            replicas = [run_gateway(procs, postgresql_url, env=NO_REDIS, revision=revision, name=f"replica-{n}")
                        for n in ("a", "b")]  # python -m gateway_server --db … --port …

            for i in range(CALLS):  # alternate: a, b, a, b, …
                email, name = USERS[i % 2]
                status, headers, answer, _ = _call_on_fresh_connection(replicas[i % 2].port, _call(email, i))
                _assert_called(status, headers, answer, i, name)
            for gw in replicas:
                assert gw.readyz()["sessions"] == 0  # nothing was remembered for a modern call

            for n, gw in zip("ab", replicas, strict=True):
                streams.append((f"replica-{n}", _listen(gw.base, f"replica-{n}")))
            store.save_document(_with_new_tool(backend))  # one config write, seen by both replicas' reloaders
            for sub_id, stream in streams:
                _assert_list_changed(stream, sub_id)
            for gw in replicas:
                assert NEW_TOOL["name"] in _tool_names(gw.mcp_url())
        finally:
            for _, stream in streams:
                stream.close()
            store.close()
