"""``mcpgw demo``: everything at once on one database, with the demo backend and its tools.

Steps: upgrade the database, import the demo document with the backend's URL (or
refresh it, unless the user edited it: their version stays the newest), make sure
an ``admin`` user exists, start the demo backend, the gateway and — when their
commands are installed — the management API and the console as subprocesses,
print the URLs and client config snippets, then wait; Ctrl-C or SIGTERM stops
every child.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from mcpgw_sdk import settings
from mcpgw_sdk.config_model import DEFAULT_TENANT
from mcpgw_sdk.errors import McpgwError, NotFound

CONFIG = Path(__file__).resolve().parent / "config.yaml"
DEFAULT_BACKEND = "http://127.0.0.1:5236"
MCPGW = [sys.executable, "-c", "import sys; from mcpgw_sdk.cli import main; sys.exit(main())"]


def demo_document(backend_url: str) -> dict[str, Any]:
    """The demo config document with ``backend_url`` as the user service's base URL."""
    content = yaml.safe_load(CONFIG.read_text())
    for server in content.get("servers") or []:
        if (server.get("config") or {}).get("baseUrl") == DEFAULT_BACKEND:
            server["config"]["baseUrl"] = backend_url.rstrip("/")
    return content


#: The author of the versions ``mcpgw demo`` writes; any other author's version is the user's edit.
DEMO_AUTHOR = "mcpgw demo"


def refresh_document(store, backend_url: str) -> str | None:
    """Store the demo document unless the user changed it since; return a note when it was left alone.

    A missing document is created. One whose current version the demo wrote is brought up to date (a new
    version only when something changed, such as the backend's URL). One the user edited, rolled back or
    deleted is never overwritten: their version stays the newest.
    """
    wanted = demo_document(backend_url)
    tenant, name = wanted.get("tenant") or DEFAULT_TENANT, wanted["name"]
    try:
        current = store.get_document(tenant, name, include_deleted=True)
    except NotFound:
        store.save_document(wanted, author=DEMO_AUTHOR)
        return None
    ident = f"{tenant}/{name}"
    if current.deleted:
        return (f"Note: the demo document {ident} is deleted (version {current.version}), so its endpoint is not "
                "served; restore it from the console's Versions page.")
    if current.updated_by == DEMO_AUTHOR:
        store.save_document(wanted, author=DEMO_AUTHOR, base_version=current.version)
        return None
    by = f" by {current.updated_by}" if current.updated_by else ""
    note = f"Kept your edits of {ident} (version {current.version}{by})."
    base_urls = [(srv.get("config") or {}).get("baseUrl") for srv in current.content.get("servers") or []]
    if base_urls and backend_url.rstrip("/") not in base_urls:
        note += (f" Its baseUrl ({', '.join(str(u) for u in base_urls)}) is not the demo backend's "
                 f"{backend_url.rstrip('/')}: change it in the console's Editor if the tools should use it.")
    return note


def prepare(db: str, backend_url: str, *, notes: list[str] | None = None,
            admin_password: str | None = None) -> str | None:
    """Upgrade the database, store the demo document, ensure ``admin``; return a generated password or None.

    The demo document is refreshed only while it is the demo's own (:func:`refresh_document`); what was
    left alone is said in ``notes``. ``admin_password`` is the setting (``None``: resolved now).
    """
    from mcpgw_sdk.opening import open_store
    from mcpgw_sdk.store import AccountStore, require_part

    store = open_store(db, check=False)
    try:
        store.upgrade()
        note = refresh_document(store, backend_url)
        if note and notes is not None:
            notes.append(note)
        password = settings.resolve().admin_password if admin_password is None else admin_password
        accounts = require_part(store, AccountStore, "create users")
        try:
            accounts.get_user("admin")
        except NotFound:
            generated = None if password else secrets.token_urlsafe(12)
            accounts.create_user("admin", password or generated, role="admin")
            return generated
        if password:
            accounts.set_password("admin", password)
        return None
    finally:
        store.close()


def _die_with_parent() -> None:
    # Children get SIGTERM if the demo itself is killed hard (Linux), so none are orphaned.
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Child:
    """A subprocess of the demo with its log file."""

    def __init__(self, name: str, args: list[str], *, env: dict[str, str], logs: Path):
        self.name = name
        self.log_path = logs / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      env=env, start_new_session=True,
                                      preexec_fn=_die_with_parent if sys.platform == "linux" else None)

    @property
    def pid(self) -> int:
        """The child's process id."""
        return self.popen.pid

    def tail(self, lines: int = 20) -> str:
        """The last lines of the child's output."""
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the child's process group, SIGKILL it after ``timeout`` seconds."""
        if self.popen.poll() is None:
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        self._log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status < 500
    except OSError:
        return False


def _port_user(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be bound right now, or None when it is free."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a TIME_WAIT leftover is not "in use"
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def check_ports(host: str, ports: dict[str, tuple[int, str]]) -> None:
    """Raise McpgwError naming the first of ``ports`` (name → (port, flag)) that is in use."""
    for name, (port, flag) in ports.items():
        reason = _port_user(host, port)
        if reason is not None:
            raise McpgwError(f"{host}:{port} is in use (the {name}'s port: {reason}; is another mcpgw demo "
                             f"running? choose another port with {flag})")


def _wait_ready(child: Child, url: str, timeout: float, stop: threading.Event) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        if child.popen.poll() is not None:
            raise McpgwError(f"{child.name} exited with code {child.popen.returncode}:\n{child.tail()}")
        if _answers(url):
            if child.popen.poll() is not None:  # the answer came from someone else on that port
                raise McpgwError(f"{child.name} exited with code {child.popen.returncode}:\n{child.tail()}")
            return
        stop.wait(0.2)
    if not stop.is_set():
        raise McpgwError(f"{child.name} did not answer {url} within {timeout:g} s:\n{child.tail()}")


def run_demo(*, cli, db: str | None, host: str, port: int, backend_port: int, api_port: int, console_port: int,
             console: bool, api: bool, echo=print) -> int:
    """Run the demo until SIGINT/SIGTERM; return the exit code."""
    resolved = settings.resolve({"database_url": db})
    db = resolved.database_url
    backend_url = os.environ.get("MCPGW_DEMO_BACKEND_URL") or f"http://{host}:{backend_port}"
    ports = {"gateway": (port, "--port")}
    if not os.environ.get("MCPGW_DEMO_BACKEND_URL"):
        ports["demo backend"] = (backend_port, "--backend-port")
    if api and "api" in cli.commands:
        ports["management API"] = (api_port, "--api-port")
    if console and "console" in cli.commands:
        ports["console"] = (console_port, "--console-port")
    try:
        check_ports(host, ports)  # before prepare(): a second demo must not touch the running one's document
    except McpgwError as exc:
        echo(f"Error: {exc}")
        return 1
    notes: list[str] = []
    generated = prepare(db, backend_url, notes=notes, admin_password=resolved.admin_password)
    logs = Path(tempfile.mkdtemp(prefix="mcpgw-demo-"))
    gateway_url = f"http://{host}:{port}"
    env = dict(os.environ, MCPGW_DATABASE_URL=db, MCPGW_GATEWAY_URL=gateway_url, PYTHONUNBUFFERED="1")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    children: list[Child] = []
    waits: list[tuple[Child, str, float]] = []
    code = 1
    try:
        if not os.environ.get("MCPGW_DEMO_BACKEND_URL"):
            child = Child("backend", [sys.executable, "-m", "gateway_server.demo.backend", "--host", host,
                                      "--port", str(backend_port)], env=env, logs=logs)
            children.append(child)
            waits.append((child, f"{backend_url}/users", 20))
        child = Child("gateway", [*MCPGW, "serve", "--db", db, "--host", host, "--port", str(port)], env=env,
                      logs=logs)
        children.append(child)
        waits.append((child, f"{gateway_url}/healthz", 30))
        if api and "api" in cli.commands:
            child = Child("api", [*MCPGW, "api", "--db", db, "--host", host, "--port", str(api_port)], env=env,
                          logs=logs)
            children.append(child)
            waits.append((child, f"http://{host}:{api_port}/api/v1/openapi.json", 30))
        if console and "console" in cli.commands:
            child = Child("console", [*MCPGW, "console", "--db", db, "--host", host, "--port", str(console_port)],
                          env=env, logs=logs)
            children.append(child)
            waits.append((child, f"http://{host}:{console_port}/", 60))
        for child, url, timeout in waits:
            _wait_ready(child, url, timeout, stop)
        if not stop.is_set():
            _announce(echo, host=host, gateway_url=gateway_url, backend_url=backend_url, children=children,
                      api_port=api_port, console_port=console_port, generated=generated, db=db, logs=logs,
                      notes=notes)
        while not stop.is_set():
            for child in children:
                if child.popen.poll() is not None:
                    echo(f"{child.name} exited with code {child.popen.returncode}; stopping the demo "
                         f"(logs kept in {logs}).\n{child.tail()}")
                    return 1
            stop.wait(0.5)
        echo("Stopping the demo ...")
        code = 0
        return code
    except McpgwError as exc:
        echo(f"Error: {exc}\n(logs kept in {logs})")
        return 1
    finally:
        for child in reversed(children):
            child.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if code == 0:
            shutil.rmtree(logs, ignore_errors=True)  # kept only when something went wrong


def _announce(echo, *, host, gateway_url, backend_url, children, api_port, console_port, generated, db, logs,
              notes=()):
    prefix = "/gateway/demo"
    names = {c.name for c in children}
    lines = [
        "mcpgw demo is running (Ctrl-C stops everything).",
        f"  Database:              {db.split('@')[-1]}",
        f"  Streamable HTTP:       {gateway_url}{prefix}/mcp",
        f"  SSE:                   {gateway_url}{prefix}/sse",
        f"  Demo REST backend:     {backend_url}",
    ]
    if "api" in names:
        lines.append(f"  Management API:        http://{host}:{api_port}/api/v1  (OpenAPI: /api/v1/openapi.json)")
    if "console" in names:
        lines.append(f"  Console:               http://{host}:{console_port}")
    if generated:
        lines.append(f"  Admin login:           admin / {generated}  (shown once; set MCPGW_ADMIN_PASSWORD to choose)")
    else:
        lines.append("  Admin login:           admin (password from MCPGW_ADMIN_PASSWORD, or unchanged)")
    lines.append(f"  Logs:                  {logs} (removed on a clean stop)")
    mcp_url = f"{gateway_url}{prefix}/mcp"
    # Cursor speaks Streamable HTTP itself; Claude Desktop starts local servers only, hence mcp-remote
    # (the console's Servers page gives the same snippets: console/servers.py client_configs).
    cursor = {"mcpServers": {"mcpgw-demo": {"url": mcp_url}}}
    claude = {"mcpServers": {"mcpgw-demo": {"command": "npx", "args": ["-y", "mcp-remote", mcp_url]}}}
    lines += ["", "Client config for Cursor (.cursor/mcp.json):", json.dumps(cursor, indent=2),
              "", "Client config for Claude Desktop (claude_desktop_config.json, through mcp-remote):",
              json.dumps(claude, indent=2)]
    if notes:
        lines += ["", *notes]
    echo("\n".join(lines))
