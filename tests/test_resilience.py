"""Under a steady load of tool calls, 50 config reloads and a 20 s SQLite outage cost zero failed calls.

The outage is real: a separate process takes the SQLite WAL locks (bytes 120-127 of the ``-shm`` file: the
writer, checkpoint, recovery and every reader slot, https://www.sqlite.org/walformat.html), as a stuck backup
or a crashed writer on a shared volume would. Every read the gateway starts then waits inside SQLite and
fails with "locking protocol" about ten seconds later; the test holds the locks until /readyz shows the
gateway noticed, and at least 20 s.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import requests

from tests.fixtures_gateway import demo_document, migrated_store
from tests.helpers import wait_for

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
CALL_TIMEOUT = 8.0  # a call that takes longer than this counts as failed
OUTAGE_SECONDS = 20.0
RELOADS = 50
LOCKER = """
import fcntl, os, sys
fd = os.open(sys.argv[1] + "-shm", os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX, 8, 120, os.SEEK_SET)
print("locked", flush=True)
sys.stdin.readline()  # held until the test writes a line (or dies: then the locks go with this process)
"""


class Load:
    """One client thread calling a tool over Streamable HTTP as fast as the gateway answers."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()
        self.calls = 0
        self.failures: list[str] = []
        self.slowest = 0.0
        self._stop = threading.Event()
        resp = self.http.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "load", "version": "1"}}},
            headers=ACCEPT, timeout=CALL_TIMEOUT)
        assert resp.status_code == 200, resp.text
        self.headers = {**ACCEPT, "Mcp-Session-Id": resp.headers["Mcp-Session-Id"]}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _call(self, n: int) -> str | None:
        body = {"jsonrpc": "2.0", "id": n, "method": "tools/call",
                "params": {"name": "get_user", "arguments": {"email": "ada@example.com"}}}
        resp = self.http.post(self.url, json=body, headers=self.headers, timeout=CALL_TIMEOUT)
        if resp.status_code != 200:
            return f"HTTP {resp.status_code}: {resp.text[:200]}"
        answer = resp.json()
        if "error" in answer or answer["result"].get("isError"):
            return str(answer)[:300]
        return None

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            n += 1
            started = time.monotonic()
            try:
                problem = self._call(n)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                problem = repr(exc)
            self.slowest = max(self.slowest, time.monotonic() - started)
            self.calls += 1
            if problem:
                self.failures.append(f"{time.strftime('%X')} {problem}")

    def start(self) -> Load:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(CALL_TIMEOUT + 5)


def test_reloads_and_a_database_outage_fail_no_call(tmp_path, demo_backend, start_gateway):
    db_path = tmp_path / "gw.db"
    url = f"sqlite:///{db_path}"
    store = migrated_store(url)
    document = demo_document(demo_backend)
    store.save_document(document)
    gw = start_gateway(url, reload_interval=0.2)
    gw.wait_revision(store.revision())
    load = Load(gw.mcp_url()).start()
    locker = None
    try:
        wait_for(lambda: load.calls >= 10, timeout=10, what="the load running")

        for i in range(RELOADS):
            document["tools"][0]["description"] = f"List users (edit {i})."
            store.save_document(document)
            gw.wait_revision(store.revision(), timeout=10)
        calls_before_outage = load.calls
        served = store.revision()

        store.close()  # the test's own connections play no part in the outage
        locker = subprocess.Popen([sys.executable, "-c", LOCKER, str(db_path)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        assert locker.stdout.readline().strip() == "locked"
        locked_at = time.monotonic()
        down = wait_for(lambda: gw.readyz().get("last_poll_error"), timeout=40, interval=0.2,
                        what="the outage on /readyz")
        assert "locking protocol" in down or "locked" in down, down
        assert gw.readyz()["revision"] == served  # still serving the last good snapshot
        wait_for(lambda: time.monotonic() - locked_at >= OUTAGE_SECONDS, timeout=OUTAGE_SECONDS + 1, interval=0.2,
                 what="the end of the outage")
        calls_during_outage = load.calls - calls_before_outage
        locker.communicate("\n", timeout=10)
        locker = None

        document["tools"][0]["description"] = "List users (after the outage)."
        store.save_document(document)
        recovered = gw.wait_revision(store.revision(), timeout=30)
        assert recovered["last_poll_error"] is None
        listed = requests.post(gw.mcp_url(), json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                               headers=load.headers, timeout=5).json()["result"]["tools"]
        assert listed[0]["description"] == "List users (after the outage)."
        wait_for(lambda: load.calls > calls_before_outage + calls_during_outage + 10, timeout=10,
                 what="calls after the outage")
    finally:
        load.stop()
        if locker is not None:
            locker.kill()
            locker.wait(5)
        store.close()
    assert load.failures == [], f"{len(load.failures)} of {load.calls} calls failed (slowest {load.slowest:.1f}s)"
    assert calls_during_outage > 20, "the load must keep running through the outage"
    log = gw.proc.output()
    assert log.count("config store unreachable") == 1 and "config store reachable again" in log
