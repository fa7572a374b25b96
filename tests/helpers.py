"""Utilities the tests share: free ports, polling with a deadline, real subprocesses, a recording backend."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import requests

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("MCPGW_TEST_REDIS", "redis://127.0.0.1:6379/0")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], T], *, timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> T:
    """Poll ``check`` until it returns a truthy value (returned) or raise after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - polling tolerates transient errors
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f": {last_exc!r}" if last_exc else ""))


def wait_http(url: str, *, timeout: float = 20.0, status: int | None = None) -> requests.Response:
    """Poll ``url`` until it answers (with ``status`` when given)."""

    def probe():
        resp = requests.get(url, timeout=2)
        return resp if status is None or resp.status_code == status else None

    return wait_for(probe, timeout=timeout, what=url)


class Proc:
    """A real subprocess whose output goes to a log file; stopped with :meth:`stop`."""

    def __init__(self, args: list[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None,
                 log: Path):
        self.args = args
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env.setdefault("PYTHONUNBUFFERED", "1")
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env,
                                      cwd=str(cwd or ROOT), start_new_session=True)

    def output(self) -> str:
        """Everything the process has printed so far."""
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Stop the process group and return the exit code."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()
        return self.popen.returncode


def python() -> str:
    """The interpreter running the tests (the project's virtualenv)."""
    return sys.executable


class Procs:
    """Real subprocesses logging to ``<log_dir>/<name>-<n>.log``; all stopped, newest first, by :meth:`stop`.

    Usable as a context manager: ``with Procs(tmp) as procs: procs.start([...], name="backend")``.
    """

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.items: list[Proc] = []

    def start(self, args, *, env: dict[str, str] | None = None, name: str = "proc",
              cwd: str | Path | None = None) -> Proc:
        """Start ``args`` as a :class:`Proc` that :meth:`stop` will end."""
        proc = Proc(list(args), env=env, cwd=cwd, log=self.log_dir / f"{name}-{len(self.items)}.log")
        self.items.append(proc)
        return proc

    def stop(self) -> None:
        """Stop every process started here, the newest first."""
        for proc in reversed(self.items):
            proc.stop()

    def __enter__(self) -> Procs:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def redis_available() -> str:
    """The test Redis URL (``MCPGW_TEST_REDIS``); skip locally (fail under CI) when it does not answer."""
    import pytest
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.ping()
        client.close()
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"Redis unavailable in CI at {REDIS_URL}: {exc}")
        pytest.skip(f"Redis unavailable at {REDIS_URL}: {exc}")
    return REDIS_URL


def key_prefix() -> str:
    """A fresh Redis key prefix, so tests sharing one Redis never see each other's keys."""
    return f"mcpgw-test-{uuid.uuid4().hex[:12]}:"


def drop_keys(prefix: str) -> None:
    """Delete every key under ``prefix`` (test cleanup)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(match=prefix + "*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


def gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (no such process, or a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] == "Z"
    except OSError:
        return True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


def wsgi_server(app) -> WSGIServer:
    """A threaded, quiet WSGI server for ``app`` bound to a free loopback port (not yet serving)."""
    return make_server("127.0.0.1", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler)


def unavailable(reason: str):
    """Skip a test whose tool or service is missing locally; fail it under CI, where a skip would hide a gap."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"unavailable in CI: {reason}")
    pytest.skip(reason)


class RecordingBackend:
    """An in-process HTTP backend on a free loopback port that records every request it receives.

    Each request is appended to :attr:`seen` as a dict: ``method``; ``target``, the request target
    exactly as it arrived (no decoding, no normalizing); ``path``, its percent-decoded path; ``query``,
    the first value of each query parameter; ``headers``, with lower-case names; ``content_type``; and
    ``body``, the bytes. Every request is answered 200 with JSON: ``answer`` when given, else the record
    itself with the body in base64, so a test can also read it from what a tool call returns.

    A context manager; :attr:`url` is its base URL::

        with RecordingBackend() as backend:
            requests.get(f"{backend.url}/a%2Fb?q=1")
            assert backend.take()[0]["target"] == "/a%2Fb?q=1"
    """

    def __init__(self, answer: Any = None):
        self.answer = answer
        self.seen: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _recording_handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"

    def record(self, request: dict) -> bytes:
        """Keep ``request`` and return the answer to send for it."""
        with self._lock:
            self.seen.append(request)
        if self.answer is not None:
            return json.dumps(self.answer).encode()
        return json.dumps({**request, "body": base64.b64encode(request["body"]).decode()}).encode()

    def clear(self) -> None:
        """Forget the requests recorded so far."""
        with self._lock:
            self.seen.clear()

    def take(self) -> list[dict]:
        """The requests recorded so far, forgotten here."""
        with self._lock:
            seen = list(self.seen)
            self.seen.clear()
        return seen

    def __enter__(self) -> RecordingBackend:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()


def _recording_handler(backend: RecordingBackend) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _record(self):
            size = int(self.headers.get("Content-Length") or 0)
            path, _, query = self.path.partition("?")
            answer = backend.record({
                "method": self.command, "target": self.path, "path": unquote(path),
                "query": {k: v[0] for k, v in parse_qs(query).items()},
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "content_type": self.headers.get("Content-Type", ""),
                "body": self.rfile.read(size) if size else b""})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _record  # noqa: N815 - http.server's spelling

        def log_message(self, *args):
            pass

    return Handler
