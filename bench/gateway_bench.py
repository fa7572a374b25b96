"""Gateway benchmark: throughput, latency, memory per SSE session and reload time. Prints; never asserts.

``python bench/gateway_bench.py [--quick]`` (``make bench`` runs it)

Starts the demo backend, the raw forwarder (``bench/forwarder.py``, the floor) and
the gateway (``mcpgw serve`` on a temporary SQLite database holding the demo
config), then measures ``tools/call`` of ``get_user`` (one ``GET /users/<email>``):

- Streamable HTTP with a session and JSON responses, with ``wrk`` (a Lua script
  gives every request a unique JSON-RPC id), at 1 and 50 connections, against the
  backend called directly and the forwarder: requests/s, p50, p99, the serving
  process's CPU time per call (from /proc; the steadiest figure on a shared
  machine) and ratios; the same call in the modern stateless era (MCP 2026-07-28:
  the ``_meta`` envelope and ``MCP-Protocol-Version``/``Mcp-Method``/``Mcp-Name``
  headers, no session) on the same gateway, with modern/legacy ratios;
- HTTP+SSE (POST ``/message`` → 202, the answer read from the stream) with a
  gevent Python client, at 1 and 50 sessions;
- memory per idle SSE session: gateway RSS delta over N open, initialized streams;
- reload: write N documents with the store, time until ``/readyz`` shows the revision.

Without ``wrk`` on PATH a gevent Python client replaces it (slower: compare ratios).
``--calls-only`` skips the memory and reload figures; ``--baseline DIR`` adds the gateway
of another source tree (say ``git archive`` of the last release) for a before/after in one run. ``bench/profile_call.py`` profiles
the same call in process (cProfile), ``bench/auth_bench.py`` compares API-key auth on/off.
See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "/gateway/demo"
EMAIL = "ada@example.com"
CALL = ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_user",'
        '"arguments":{"email":"' + EMAIL + '"}}}')
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
MODERN_VERSION = "2026-07-28"
# The same call in the stateless era (docs/eras.md): the ``_meta`` envelope in the body, the version,
# method and tool name in headers, no session.
MODERN_CALL = ('{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get_user",'
               '"arguments":{"email":"' + EMAIL + '"},"_meta":{"io.modelcontextprotocol/protocolVersion":"'
               + MODERN_VERSION + '","io.modelcontextprotocol/clientCapabilities":{}}}}')
MODERN_HEADERS = {**MCP_HEADERS, "MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/call",
                  "Mcp-Name": "get_user"}


# -- processes -------------------------------------------------------------------

def free_port() -> int:
    """A free loopback port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], log: Path, env: dict | None = None, cwd: Path = ROOT) -> subprocess.Popen:
    """Start a server process in its own session, output to ``log``."""
    return subprocess.Popen(args, stdout=open(log, "wb"), stderr=subprocess.STDOUT, cwd=cwd,  # noqa: SIM115
                            env={**os.environ, **(env or {})}, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM a started process group, SIGKILL after 10 s."""
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_url(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Poll ``url`` until it answers below 500, or fail when ``proc`` died or time ran out."""
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    """Poll until ``port`` accepts connections, or fail when ``proc`` died or time ran out."""
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"port {port} did not open within {timeout} s")


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time ``pid`` has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mcp_session(url: str) -> str:
    """Initialize a Streamable HTTP session and check one call works; return the session id."""
    import requests

    init = requests.post(url, headers=MCP_HEADERS, timeout=10, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    init.raise_for_status()
    session = init.headers["Mcp-Session-Id"]
    headers = {**MCP_HEADERS, "Mcp-Session-Id": session}
    requests.post(url, headers=headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, timeout=10)
    check = requests.post(url, headers=headers, data=CALL % 1, timeout=10).json()
    if check.get("result", {}).get("isError") is not False:
        raise SystemExit(f"the gateway's tools/call does not work: {check}")
    return session


def modern_check(url: str) -> str | None:
    """None when ``url`` answers a modern stateless ``tools/call``; otherwise why not (e.g. an older gateway)."""
    import requests

    try:
        resp = requests.post(url, headers=MODERN_HEADERS, data=MODERN_CALL % 1, timeout=10)
        answer = resp.json()
    except (OSError, ValueError) as exc:
        return f"no JSON answer ({exc})"
    result = answer.get("result") if isinstance(answer, dict) else None
    if resp.status_code != 200 or not isinstance(result, dict) or result.get("isError") is not False \
            or result.get("resultType") != "complete" or "Mcp-Session-Id" in resp.headers:
        return f"HTTP {resp.status_code}: {resp.text[:200]}"
    return None


# -- load generation -------------------------------------------------------------

WRK_SCRIPT = """
wrk.method = "%(method)s"
%(headers)s
local counter = 0
local nthreads = 0
function setup(thread)
  thread:set("tid", nthreads)
  nthreads = nthreads + 1
end
function request()
  counter = counter + 1
  local body = nil
  if BODY ~= "" then body = string.format(BODY, tid * 1000000000 + counter) end
  return wrk.format(nil, nil, nil, body)
end
BODY = [[%(body)s]]
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests": %%d, "duration_us": %%d, "p50_us": %%d, "p99_us": %%d, '
    .. '"errors": %%d, "non2xx": %%d}\\n', summary.requests, summary.duration, math.floor(latency:percentile(50)),
    math.floor(latency:percentile(99)), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def wrk(url: str, *, conns: int, duration: float, method: str = "GET", headers: dict | None = None,
        body: str = "", workdir: Path) -> dict:
    """Run wrk against ``url``; return requests/s, p50/p99 in ms and errors."""
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in (headers or {}).items())
    script = workdir / f"wrk-{abs(hash((url, method, body))) % 10**8}.lua"
    script.write_text(WRK_SCRIPT % {"method": method, "headers": lines, "body": body})
    threads = 1 if conns == 1 else 2
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{max(1, round(duration))}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, timeout=duration + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data = json.loads(line[8:])
            return {"rps": data["requests"] / (data["duration_us"] / 1e6), "calls": data["requests"],
                    "p50": data["p50_us"] / 1000,
                    "p99": data["p99_us"] / 1000, "errors": data["errors"] + data["non2xx"]}
    raise SystemExit(f"wrk failed: {out.stdout}\n{out.stderr}")


def pyload(spec: dict) -> dict:
    """Run the gevent load generator in a subprocess (``--loadgen``) and return its JSON result."""
    out = subprocess.run([sys.executable, __file__, "--loadgen", json.dumps(spec)], capture_output=True, text=True,
                         timeout=spec.get("duration", 0) + 300)
    for line in out.stdout.splitlines():
        if line.startswith("LOADJSON "):
            return json.loads(line[9:])
    raise SystemExit(f"load generator failed: {out.stdout}\n{out.stderr}")


def _summary(latencies: list[float], elapsed: float, errors: int) -> dict:
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "calls": 0, "p50": float("nan"), "p99": float("nan"), "errors": errors}
    return {"rps": len(latencies) / elapsed, "calls": len(latencies), "p50": latencies[len(latencies) // 2] * 1000,
            "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, "errors": errors}


def loadgen(spec: dict) -> None:
    """The gevent load generator (runs in its own, patched process)."""
    from gevent import monkey

    monkey.patch_all()
    import gevent

    mode = spec["mode"]
    if mode == "http":
        result = _http_load(spec, gevent)
    elif mode == "sse":
        result = _sse_load(spec, gevent)
    elif mode == "idle-sse":
        _idle_sse(spec, gevent)
        return
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("LOADJSON " + json.dumps(result), flush=True)


def _connection(base: str):
    import http.client
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.connect()
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return conn


def _http_load(spec: dict, gevent) -> dict:
    from urllib.parse import urlsplit

    url, method, headers, body = spec["url"], spec["method"], spec.get("headers", {}), spec.get("body", "")
    path = urlsplit(url).path
    deadline = time.monotonic() + spec["duration"]
    latencies: list[float] = []
    errors = [0]

    def worker(index: int) -> None:
        conn = _connection(url)
        counter = 0
        while time.monotonic() < deadline:
            counter += 1
            data = (body % (index * 1_000_000_000 + counter)).encode() if body else None
            started = time.perf_counter()
            try:
                conn.request(method, path, body=data, headers=headers)
                resp = conn.getresponse()
                resp.read()
                if resp.status >= 400:
                    errors[0] += 1
            except OSError:
                errors[0] += 1
                conn.close()
                conn = _connection(url)
                continue
            latencies.append(time.perf_counter() - started)

    started = time.monotonic()
    gevent.joinall([gevent.spawn(worker, i) for i in range(spec["conns"])])
    return _summary(latencies, time.monotonic() - started, errors[0])


class _SseSession:
    """One HTTP+SSE MCP session: the stream and a keep-alive connection for POSTs."""

    def __init__(self, base: str, prefix: str):
        self.base = base
        self.stream_conn = _connection(base)
        self.stream_conn.request("GET", prefix + "/sse", headers={"Accept": "text/event-stream"})
        self.stream = self.stream_conn.getresponse()
        event, data = self.event()
        if event != "endpoint":
            raise RuntimeError(f"expected the endpoint event, got {event}: {data}")
        self.message_path = data if data.startswith("/") else prefix + "/" + data
        self.post_conn = None

    def event(self) -> tuple[str, str]:
        """The next event (name, data), skipping comments."""
        name, data = "message", []
        while True:
            line = self.stream.readline()
            if not line:
                raise EOFError("stream closed")
            line = line.decode().rstrip("\r\n")
            if not line:
                if data:
                    return name, "\n".join(data)
                continue
            if line.startswith(":"):
                continue
            key, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)

    def post(self, body: str) -> None:
        """POST a message (expects 202)."""
        if self.post_conn is None:
            self.post_conn = _connection(self.base)
        self.post_conn.request("POST", self.message_path, body=body.encode(),
                               headers={"Content-Type": "application/json"})
        resp = self.post_conn.getresponse()
        resp.read()
        if resp.status != 202:
            raise RuntimeError(f"POST {self.message_path} answered {resp.status}")

    def call(self, body: str, ident: int) -> dict:
        """POST a request and read events until its response arrives."""
        self.post(body)
        while True:
            _name, data = self.event()
            message = json.loads(data)
            if message.get("id") == ident:
                return message

    def initialize(self) -> None:
        """The initialize handshake."""
        self.call(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}), 0)
        self.post('{"jsonrpc":"2.0","method":"notifications/initialized"}')

    def close(self) -> None:
        """Close both connections."""
        self.stream_conn.close()
        if self.post_conn is not None:
            self.post_conn.close()


def _sse_load(spec: dict, gevent) -> dict:
    deadline = time.monotonic() + spec["duration"]
    latencies: list[float] = []
    errors = [0]

    def worker(index: int) -> None:
        session = _SseSession(spec["base"], spec["prefix"])
        session.initialize()
        counter = 0
        while time.monotonic() < deadline:
            counter += 1
            ident = index * 1_000_000_000 + counter
            started = time.perf_counter()
            try:
                answer = session.call(CALL % ident, ident)
            except (OSError, RuntimeError, EOFError):
                errors[0] += 1
                break
            if answer.get("result", {}).get("isError") is not False:
                errors[0] += 1
            latencies.append(time.perf_counter() - started)
        session.close()

    started = time.monotonic()
    gevent.joinall([gevent.spawn(worker, i) for i in range(spec["conns"])])
    return _summary(latencies, time.monotonic() - started, errors[0])


def _idle_sse(spec: dict, gevent) -> None:
    from gevent.pool import Pool

    sessions: list[_SseSession] = []
    failures = [0]

    def open_one(_index: int) -> None:
        try:
            session = _SseSession(spec["base"], spec["prefix"])
            session.initialize()
            session.post_conn.close()
            session.post_conn = None
            sessions.append(session)
        except (OSError, RuntimeError, EOFError):
            failures[0] += 1

    Pool(100).map(open_one, range(spec["sessions"]))
    print(f"READY {len(sessions)} {failures[0]}", flush=True)
    sys.stdin.read()  # hold the streams open until the parent closes our stdin
    for session in sessions:
        session.close()


# -- measurements ----------------------------------------------------------------

TRANSPORTS = {"gateway": "streamable-http", "baseline": "streamable-http", "gateway modern": "modern stateless",
              "baseline modern": "modern stateless"}


def throughput(args, urls: dict, session: str, workdir: Path, pids: dict) -> list[tuple]:
    """Streamable HTTP (and the two baselines) at 1 and 50 connections; medians over rounds.

    The gateway is measured twice on the same ``P/mcp``: legacy calls on one session and modern
    (2026-07-28) stateless calls; so is the baseline when it serves the modern era. Each row also carries the serving process's CPU time per call (``pids`` by target name;
    the backend's own CPU is not counted for the forwarder and the gateway).
    """
    use_wrk = shutil.which("wrk") is not None
    if not use_wrk:
        print("wrk not found: using the gevent Python load generator (its own cost dominates; compare ratios)")
    targets = {
        "backend direct": dict(url=urls["backend"] + "/users/" + EMAIL, method="GET", headers={}, body=""),
        "forwarder": dict(url=urls["forwarder"] + "/", method="POST", headers={"Content-Type": "application/json"},
                          body=CALL),
        "gateway": dict(url=urls["gateway"] + PREFIX + "/mcp", method="POST",
                        headers={**MCP_HEADERS, "Mcp-Session-Id": session}, body=CALL),
    }
    # The modern era on the same endpoint: stateless, so no Mcp-Session-Id (same gateway process).
    targets["gateway modern"] = dict(url=urls["gateway"] + PREFIX + "/mcp", method="POST",
                                     headers=MODERN_HEADERS, body=MODERN_CALL)
    if "baseline" in urls:
        targets["baseline"] = dict(url=urls["baseline"] + PREFIX + "/mcp", method="POST",
                                   headers={**MCP_HEADERS, "Mcp-Session-Id": urls["baseline session"]}, body=CALL)
        if urls.get("baseline modern"):
            targets["baseline modern"] = dict(url=urls["baseline"] + PREFIX + "/mcp", method="POST",
                                              headers=MODERN_HEADERS, body=MODERN_CALL)
    rows = []
    for conns in (1, 50):
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _round in range(args.rounds):
            for name, target in targets.items():  # interleaved, so drifts hit all alike
                cpu_before = cpu_seconds(pids[name])
                if use_wrk:
                    result = wrk(target["url"], conns=conns, duration=args.duration, method=target["method"],
                                 headers=target["headers"], body=target["body"], workdir=workdir)
                else:
                    result = pyload({"mode": "http", "conns": conns, "duration": args.duration, **target})
                result["cpu_ms"] = (cpu_seconds(pids[name]) - cpu_before) * 1000 / max(result["calls"], 1)
                runs[name].append(result)
        for name, results in runs.items():
            transport = TRANSPORTS.get(name, "http")
            rows.append((transport, conns, name,
                         statistics.median(r["rps"] for r in results), statistics.median(r["p50"] for r in results),
                         statistics.median(r["p99"] for r in results), sum(r["errors"] for r in results),
                         statistics.median(r["cpu_ms"] for r in results)))
    return rows


def sse_throughput(args, urls: dict, gateway_pid: int) -> list[tuple]:
    """HTTP+SSE tools/call with the Python client at 1 and 50 sessions (CPU includes session setup)."""
    rows = []
    for conns in (1, 50):
        before = cpu_seconds(gateway_pid)
        result = pyload({"mode": "sse", "conns": conns, "duration": args.duration, "base": urls["gateway"],
                         "prefix": PREFIX})
        cpu_ms = (cpu_seconds(gateway_pid) - before) * 1000 / max(result["calls"], 1)
        rows.append(("sse (py client)", conns, "gateway", result["rps"], result["p50"], result["p99"],
                     result["errors"], cpu_ms))
    return rows


def sse_memory(args, urls: dict, gateway: subprocess.Popen) -> dict:
    """RSS delta of the gateway over ``args.sessions`` idle, initialized SSE sessions."""
    import requests

    before = rss_kib(gateway.pid)
    holder = subprocess.Popen([sys.executable, __file__, "--loadgen", json.dumps({
        "mode": "idle-sse", "sessions": args.sessions, "base": urls["gateway"], "prefix": PREFIX})],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = holder.stdout.readline().split()
        opened, failed = int(line[1]), int(line[2])
        sessions = requests.get(urls["gateway"] + "/readyz", timeout=10).json().get("sessions")
        after = rss_kib(gateway.pid)
    finally:
        holder.stdin.close()
        holder.wait(60)
    return {"opened": opened, "failed": failed, "sessions_seen": sessions, "rss_before_kib": before,
            "rss_after_kib": after, "kib_per_session": (after - before) / max(opened, 1)}


def one_tool_documents(count: int, base: str, tenant: str) -> list[dict]:
    """``count`` documents of one REST tool each (``GET {base}/users/{email}``), one prefix each."""
    return [{"name": f"{tenant}-{i}", "tenant": tenant, "routers": [{"server": "s", "prefix": f"/{tenant}/d{i}"}],
             "servers": [{"name": "s", "allowedTools": ["get_user"], "config": {"base": base}}],
             "tools": [{"name": "get_user", "method": "GET", "endpoint": "{{ config.base }}/users/{email}",
                        "args": [{"name": "email", "position": "path", "required": True, "type": "string"}]}]}
            for i in range(count)]


def write_and_wait(gateway_url: str, db: str, docs: list[dict], *, timeout: float = 300) -> dict:
    """Write ``docs`` in one transaction; seconds the write took and until ``/readyz`` shows its revision."""
    import requests

    from mcpgw_sdk.opening import open_store

    store = open_store(db)
    try:
        started = time.monotonic()
        store.import_documents(docs, author="bench")
        written = time.monotonic()
        revision = store.revision()
    finally:
        store.close()
    while time.monotonic() < written + timeout:
        ready = requests.get(gateway_url + "/readyz", timeout=60).json()
        if (ready.get("revision") or 0) >= revision:
            return {"write_s": written - started, "visible_s": time.monotonic() - written,
                    "routes": len(ready.get("routes") or []), "errors": len(ready.get("documents_with_errors") or {})}
        time.sleep(0.02)
    return {"write_s": written - started, "visible_s": float("nan"), "routes": 0, "errors": 0}


def reload_time(args, db: str, urls: dict) -> dict:
    """Write ``args.documents`` documents in one transaction; time until /readyz shows the revision."""
    seen = write_and_wait(urls["gateway"], db, one_tool_documents(args.documents, urls["backend"], "bench"),
                          timeout=120)
    return {"documents": args.documents, "write_s": seen["write_s"], "visible_after_write_s": seen["visible_s"],
            "routes": seen["routes"], "errors": seen["errors"]}


# -- main ------------------------------------------------------------------------

BENCH_ENV = {"MCPGW_LOG_LEVEL": "WARNING", "MCPGW_ADMIN_PASSWORD": "bench-only-password", "PYTHONUNBUFFERED": "1"}


def setup(prefix: str, names: tuple[str, ...]) -> tuple[Path, dict, dict, str, dict]:
    """A work directory, a free port and URL per name, a SQLite URL in it, and the servers' environment."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    ports = {name: free_port() for name in names}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    os.environ["MCPGW_ADMIN_PASSWORD"] = BENCH_ENV["MCPGW_ADMIN_PASSWORD"]
    return workdir, ports, urls, f"sqlite:///{workdir / 'bench.db'}", dict(BENCH_ENV)


def start_backend(port: int, workdir: Path, env: dict) -> subprocess.Popen:
    """The demo REST backend on ``port``, answering before this returns."""
    backend = start([sys.executable, "-m", "gateway_server.demo.backend", "--port", str(port)],
                    workdir / "backend.log", env)
    wait_url(f"http://127.0.0.1:{port}/users", backend)
    return backend


def main() -> None:
    """Start everything, measure, print, stop everything."""
    parser = argparse.ArgumentParser(description="mcpgw gateway benchmark (prints figures, never asserts)")
    parser.add_argument("--quick", action="store_true", help="short run: 1 round of 2 s, 500 sessions, 100 documents")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 5, quick 2)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per figure (default 3, quick 1)")
    parser.add_argument("--sessions", type=int, help="idle SSE sessions for the memory figure (default 5000)")
    parser.add_argument("--documents", type=int, help="documents for the reload figure (default 1000)")
    parser.add_argument("--reload-interval", type=float, default=1.0, help="the gateway's poll interval (s)")
    parser.add_argument("--calls-only", action="store_true", help="only the tools/call figures (no memory, reload)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also measure the gateway of another source tree DIR (holding gateway_server/ and "
                             "mcpgw_sdk/, e.g. from `git archive`) as the row 'baseline'")
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.sessions = args.sessions or (500 if args.quick else 5000)
    args.documents = args.documents or (100 if args.quick else 1000)

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * args.sessions + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))  # children inherit it

    sys.path.insert(0, str(ROOT))
    from gateway_server.demo.run import prepare

    workdir, ports, urls, db, env = setup("mcpgw-bench-", ("backend", "forwarder", "gateway"))
    procs = []
    try:
        backend = start_backend(ports["backend"], workdir, env)
        procs.append(backend)
        forwarder = start([sys.executable, str(ROOT / "bench" / "forwarder.py"), "--port", str(ports["forwarder"]),
                           "--backend", urls["backend"]], workdir / "forwarder.log", env)
        procs.append(forwarder)
        prepare(db, urls["backend"])
        gateway = start([sys.executable, "-m", "gateway_server", "--db", db, "--port", str(ports["gateway"]),
                         "--reload-interval", str(args.reload_interval)], workdir / "gateway.log", env)
        procs.append(gateway)
        wait_url(urls["gateway"] + "/readyz", gateway)
        session = mcp_session(urls["gateway"] + PREFIX + "/mcp")
        wait_port(ports["forwarder"], forwarder)  # it only takes POSTs, so poll the port
        why_not = modern_check(urls["gateway"] + PREFIX + "/mcp")
        if why_not:
            raise SystemExit(f"the gateway's modern tools/call does not work: {why_not}")
        pids = {"backend direct": backend.pid, "forwarder": forwarder.pid, "gateway": gateway.pid,
                "gateway modern": gateway.pid}
        if args.baseline:
            # The same gateway command run from another source tree (e.g. `git archive` of a commit).
            base_db = f"sqlite:///{workdir / 'baseline.db'}"
            prepare(base_db, urls["backend"])
            urls["baseline"] = f"http://127.0.0.1:{free_port()}"
            baseline = start([sys.executable, "-m", "gateway_server", "--db", base_db, "--port",
                              urls["baseline"].rsplit(":", 1)[1], "--reload-interval", str(args.reload_interval)],
                             workdir / "baseline.log", {**env, "PYTHONPATH": str(args.baseline)},
                             cwd=args.baseline)
            procs.append(baseline)
            wait_url(urls["baseline"] + "/readyz", baseline)
            urls["baseline session"] = mcp_session(urls["baseline"] + PREFIX + "/mcp")
            pids["baseline"] = pids["baseline modern"] = baseline.pid
            why_not = modern_check(urls["baseline"] + PREFIX + "/mcp")
            urls["baseline modern"] = "" if why_not else "yes"
            if why_not:
                print(f"the baseline does not serve modern tools/call, so no 'baseline modern' row ({why_not})")

        print(f"mcpgw gateway benchmark ({'quick' if args.quick else 'full'}: {args.rounds} round(s) x "
              f"{args.duration:g} s, {os.cpu_count()} CPUs; logs in {workdir})")
        rows = throughput(args, urls, session, workdir, pids) + sse_throughput(args, urls, gateway.pid)
        print(f"\n{'transport':<17}{'conns':>6}  {'target':<16}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
              f"{'CPU ms/call':>13}")
        for transport, conns, target, rps, p50, p99, errors, cpu in rows:
            print(f"{transport:<17}{conns:>6}  {target:<16}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}{errors:>8}{cpu:>13.3f}")
        by = {(r[2], r[1], r[0]): r for r in rows}
        print()
        for conns in (1, 50):
            gw = by[("gateway", conns, "streamable-http")]
            direct, fwd = by[("backend direct", conns, "http")], by[("forwarder", conns, "http")]
            print(f"ratios at {conns:>2} conns: gateway/direct req/s {gw[3] / direct[3]:.2f}, "
                  f"gateway/forwarder req/s {gw[3] / fwd[3]:.2f}, p50 gateway/forwarder {gw[4] / fwd[4]:.2f} "
                  f"(p50 gateway - forwarder {gw[4] - fwd[4]:+.2f} ms), CPU/call gateway/forwarder "
                  f"{gw[7] / fwd[7]:.2f}")
            mod = by[("gateway modern", conns, "modern stateless")]
            print(f"  modern at {conns:>2} conns: modern/legacy req/s {mod[3] / gw[3]:.2f}, CPU/call modern/legacy "
                  f"{mod[7] / gw[7]:.2f} ({mod[7] - gw[7]:+.3f} ms), p50 modern - legacy {mod[4] - gw[4]:+.2f} ms, "
                  f"modern/forwarder req/s {mod[3] / fwd[3]:.2f}")
            if ("baseline", conns, "streamable-http") in by:
                base = by[("baseline", conns, "streamable-http")]
                print(f"  baseline at {conns:>2} conns: baseline/forwarder req/s {base[3] / fwd[3]:.2f}, "
                      f"gateway/baseline req/s {gw[3] / base[3]:.2f}, CPU/call gateway/baseline {gw[7] / base[7]:.2f}")
            if ("baseline modern", conns, "modern stateless") in by:
                bmod = by[("baseline modern", conns, "modern stateless")]
                print(f"  baseline modern at {conns:>2} conns: modern gateway/baseline req/s {mod[3] / bmod[3]:.2f}, "
                      f"CPU/call {mod[7] / bmod[7]:.2f}; baseline modern/legacy CPU/call {bmod[7] / base[7]:.2f}")

        if args.calls_only:
            return
        mem = sse_memory(args, urls, gateway)
        print(f"\nidle SSE sessions: {mem['opened']} open ({mem['failed']} failed; /readyz counts "
              f"{mem['sessions_seen']}), gateway RSS {mem['rss_before_kib'] / 1024:.1f} -> "
              f"{mem['rss_after_kib'] / 1024:.1f} MiB = {mem['kib_per_session']:.1f} KiB per session")

        rel = reload_time(args, db, urls)
        print(f"reload: {rel['documents']} documents written in {rel['write_s']:.2f} s, visible on /readyz "
              f"{rel['visible_after_write_s']:.2f} s later (poll interval {args.reload_interval:g} s; "
              f"{rel.get('routes')} routes, {rel.get('errors')} with errors)")
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--loadgen":
        loadgen(json.loads(sys.argv[2]))
    else:
        main()
