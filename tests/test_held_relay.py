"""A held call's retry that reaches another gunicorn worker is routed to its worker through Redis.

``gunicorn -k gevent -w 2`` with ``MCPGW_REDIS_URL`` set, in front of the conformance fixture pinned to
the legacy era. A modern client's ``tools/call`` of the fixture's ``test_elicitation`` or
``test_sampling`` is held in the worker that took it (docs/eras.md, *Held calls*); the retry is sent
over a connection that another worker holds (told apart through Linux's ``/proc``, as in
tests/test_scaleout_modern.py), so it can only complete if that worker relays it to the holder. The
same retry without a holder (its worker killed) gets a clear ``-32602``.
"""

from __future__ import annotations

import http.client
import json
import os
import signal

import pytest

from tests.fixtures_gateway import fixture_document, gunicorn_path, run_gateway, seed
from tests.helpers import Procs, drop_keys, key_prefix, redis_available, wait_for
from tests.test_modern import headers_for
from tests.test_mrtr import MODERN
from tests.test_scaleout_modern import _linux_proc, _owner, _workers

PREFIX = "/gateway/relay"
ELICIT = {"name": "test_elicitation", "arguments": {"message": "Who are you?"}}
SAMPLE = {"name": "test_sampling", "arguments": {"prompt": "What is six times seven?"}}
ELICITED = {"action": "accept", "content": {"username": "ada", "email": "ada@example.org"}}
SAMPLED = {"role": "assistant", "content": {"type": "text", "text": "forty-two"}, "model": "test-model"}
ATTEMPTS = 60  # fresh connections tried until one lands on the other worker (each lands on either at random)


def _message(params: dict, msg_id: int, method: str = "tools/call") -> dict:
    meta = {"io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}, "sampling": {}}}
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": {**params, "_meta": meta}}


class Connection:
    """One HTTP connection to the gateway and the gunicorn worker that holds its server end."""

    def __init__(self, port: int, workers: set[int]):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        client_port = self.conn.sock.getsockname()[1]
        self.pid = wait_for(lambda: _owner(workers, port, client_port), timeout=10,
                            what="the worker holding the connection")

    def post(self, message: dict) -> tuple[int, dict]:
        self.conn.request("POST", f"{PREFIX}/mcp", json.dumps(message).encode(), headers_for(message))
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.getheader("content-type", "").startswith("text/event-stream"):
            datas = [line[5:].strip() for line in data.decode().splitlines() if line.startswith("data:")]
            return resp.status, next(m for m in map(json.loads, datas) if "id" in m)
        return resp.status, json.loads(data)

    def close(self) -> None:
        self.conn.close()


def _connection(port: int, workers: set[int], *, avoid: int) -> Connection:
    """A connection held by a worker other than ``avoid``."""
    for _ in range(ATTEMPTS):
        conn = Connection(port, workers)
        if conn.pid != avoid:
            return conn
        conn.close()
    raise AssertionError(f"{ATTEMPTS} connections in a row landed on worker {avoid}")


@pytest.fixture(scope="module")
def gunicorn(tmp_path_factory):
    _linux_proc()
    redis_url = redis_available()
    prefix = key_prefix()
    with Procs(tmp_path_factory.mktemp("relay")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, fixture_document("relayed", PREFIX, era="legacy"))
        gw = run_gateway(procs, url, revision=revision, name="gunicorn",
                         env={"MCPGW_REDIS_URL": f"{redis_url}?key_prefix={prefix}",
                              "MCPGW_HELD_CALL_TIMEOUT": "20"},
                         command=[gunicorn_path(), "-k", "gevent", "-w", "2", "--graceful-timeout", "2",
                                  "-b", "127.0.0.1:{port}", "gateway_server.wsgi:app"])
        workers = wait_for(lambda: (lambda w: w if len(w) == 2 else None)(_workers(gw.proc.popen.pid)),
                           timeout=15, what="gunicorn's two workers")
        try:
            yield gw, workers
        finally:
            drop_keys(prefix)


def _held(gw, workers: set[int], params: dict, method: str = "tools/call") -> tuple[Connection, dict]:
    first = Connection(gw.port, workers)
    try:
        status, answer = first.post(_message(params, 1, method))
    finally:
        first.close()
    assert status == 200, answer
    result = answer["result"]
    assert result["resultType"] == "input_required", result
    return first, result


def _retry(conn: Connection, params: dict, key: str, answer: dict, state: str, msg_id: int,
           method: str = "tools/call") -> tuple[int, dict]:
    """Send the retry answering ``key`` over ``conn`` (then closed)."""
    try:
        return conn.post(_message({**params, "inputResponses": {key: answer}, "requestState": state}, msg_id, method))
    finally:
        conn.close()


@pytest.mark.parametrize(("params", "answer", "expected"), [
    (ELICIT, ELICITED, 'User response: action=accept, content={"username": "ada", "email": "ada@example.org"}'),
    (SAMPLE, SAMPLED, "LLM response: forty-two"),
], ids=["elicitation", "sampling"])
def test_a_retry_on_the_other_worker_completes_the_held_call(gunicorn, params, answer, expected):
    gw, workers = gunicorn
    first, result = _held(gw, workers, params)
    (key, request), = result["inputRequests"].items()
    assert request["method"] in ("elicitation/create", "sampling/createMessage"), request
    status, done = _retry(_connection(gw.port, workers, avoid=first.pid), params, key, answer,
                          result["requestState"], 2)
    assert status == 200, done
    assert done["id"] == 2 and done["result"]["resultType"] == "complete", done
    assert done["result"]["content"][0]["text"] == expected, done


def test_a_held_prompt_completes_on_the_other_worker(gunicorn):
    gw, workers = gunicorn
    params = {"name": "test_prompt_with_elicitation"}
    first, result = _held(gw, workers, params, "prompts/get")
    key = next(iter(result["inputRequests"]))
    status, done = _retry(_connection(gw.port, workers, avoid=first.pid), params, key,
                          {"action": "accept", "content": {"topic": "tides"}}, result["requestState"], 2, "prompts/get")
    assert status == 200, done
    assert done["result"]["messages"][0]["content"]["text"] == "Write about tides.", done


def test_a_retry_whose_worker_is_gone_gets_a_clear_error(gunicorn):
    gw, workers = gunicorn
    first, result = _held(gw, workers, ELICIT)
    key = next(iter(result["inputRequests"]))
    os.kill(first.pid, signal.SIGKILL)  # gunicorn starts a new worker (another worker id) in its place
    live = wait_for(lambda: (lambda w: w if len(w) == 2 and first.pid not in w else None)(
        _workers(gw.proc.popen.pid)), timeout=20, what="gunicorn's replacement worker")
    workers.clear()
    workers.update(live)
    status, refused = _retry(Connection(gw.port, workers), ELICIT, key, ELICITED, result["requestState"], 3)
    assert status == 400, refused
    assert refused["error"]["code"] == -32602, refused
    assert "has stopped" in refused["error"]["message"], refused
