"""A gateway for notebooks and scripts: ``mcpgw serve`` started as a child process.

The gateway patches the interpreter with gevent, which a notebook kernel,
Streamlit or a test runner must not undergo, so the local gateway is a separate
process on a free loopback port, stopped with :meth:`LocalGateway.stop` (or at
the end of a ``with`` block).

>>> with LocalGateway("sqlite:///mcpgw.db") as gateway:  # doctest: +SKIP
...     with gateway.client("/gateway/demo") as client:
...         client.call_tool("list_users", {})
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from .errors import McpgwError
from .settings import resolve


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalGateway:
    """``mcpgw serve`` on ``host:port`` (a free port when ``port`` is 0) for the store at ``db``.

    ``reload_interval`` is the poll period of the child (seconds): saves made
    through the SDK are served within one interval.
    """

    def __init__(self, db: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
                 reload_interval: float = 0.5, env: dict[str, str] | None = None):
        self.db = db if db is not None else resolve().database_url
        self.host = host
        self.port = port or _free_port(host)
        self.reload_interval = reload_interval
        self.env = env or {}
        self.process: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running gateway."""
        return f"http://{self.host}:{self.port}"

    def url(self, prefix: str, transport: str = "streamable-http") -> str:
        """The endpoint of ``prefix``: ``…/mcp`` (Streamable HTTP) or ``…/sse``."""
        tail = "/sse" if transport == "sse" else "/mcp"
        return self.base_url + "/" + prefix.strip("/") + tail

    def start(self, *, timeout: float = 30.0) -> LocalGateway:
        """Start the child and wait until ``/readyz`` says the config is loaded."""
        if self.process is not None:
            return self
        self._log = tempfile.NamedTemporaryFile(prefix="mcpgw-gateway-", suffix=".log", delete=False)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway_server", "--db", self.db, "--host", self.host, "--port", str(self.port),
             "--reload-interval", str(self.reload_interval)],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise McpgwError(f"the gateway exited with code {self.process.returncode}:\n{self.output()}")
            if self.ready():
                return self
            time.sleep(0.1)
        self.stop()
        raise McpgwError(f"the gateway did not become ready within {timeout} s:\n{self.output()}")

    def readiness(self) -> dict[str, Any]:
        """The gateway's ``/readyz`` document."""
        import urllib.error  # here, not at import: it loads ssl, which gevent must patch first
        import urllib.request

        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=2) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read() or b"{}")

    def ready(self) -> bool:
        """True once the gateway serves a loaded config."""
        try:
            return bool(self.readiness().get("ready"))
        except (OSError, ValueError):
            return False

    def wait_for_revision(self, revision: int, *, timeout: float = 10.0) -> None:
        """Wait until the gateway serves ``revision`` (or a later one), e.g. after a save."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if (self.readiness().get("revision") or 0) >= revision:
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        raise McpgwError(f"the gateway did not reach revision {revision} within {timeout} s")

    def client(self, prefix: str, *, transport: str = "streamable-http", **kwargs: Any):
        """A connected :class:`~mcpgw_sdk.client.McpClient` for ``prefix`` (close it, or use ``with``)."""
        from .client import McpClient

        return McpClient(self.url(prefix, transport), transport=transport, **kwargs).connect()

    def output(self) -> str:
        """What the gateway has logged so far."""
        if self._log is None:
            return ""
        self._log.flush()
        with open(self._log.name, errors="replace") as fh:
            return fh.read()

    def stop(self) -> None:
        """Stop the child process."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
        if self._log is not None:
            self._log.close()
            os.unlink(self._log.name)
            self._log = None

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.process is not None else "stopped"
        return f"<LocalGateway {self.base_url} {state}>"
