"""Profile the gateway's ``tools/call`` hot path in process. Prints; never asserts.

``python bench/profile_call.py [--calls N] [--top N] [--no-audit] [--sort tottime] [--modern] [--cpu-timer]
[--stub-backend]``

Starts the demo backend (a subprocess on a free port), builds the gateway app on a
temporary SQLite database holding the demo document, opens one Streamable HTTP
session and then drives ``tools/call get_user`` straight through the WSGI callable
(no HTTP server, no load generator) — or, with ``--modern``, the 2026-07-28 stateless
call (no session; the ``_meta`` envelope and the modern headers) — first untimed to warm up, then timed, then
under :mod:`cProfile`. Also times ``store.write_audit`` per record for a batch,
since audit writes share the process (and, under gevent, the hub) with calls.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from gateway_bench import (  # noqa: E402
    CALL,
    EMAIL,
    MODERN_CALL,
    MODERN_HEADERS,
    PREFIX,
    free_port,
    start,
    stop,
    wait_url,
)

# The modern (2026-07-28) request's extra headers as WSGI keys (``--modern``).
MODERN_ENVIRON = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in MODERN_HEADERS.items()
                  if k not in ("Content-Type", "Accept")}


def _environ(body: bytes, session: str | None, extra: dict | None = None) -> dict:
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": PREFIX + "/mcp", "QUERY_STRING": "", "SERVER_PORT": "5235",
           "HTTP_HOST": "127.0.0.1:5235", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
           "HTTP_ACCEPT": "application/json, text/event-stream", "wsgi.input": io.BytesIO(body),
           "wsgi.url_scheme": "http", **(extra or {})}
    if session:
        env["HTTP_MCP_SESSION_ID"] = session
    return env


def _call(app, body: bytes, session: str | None, extra: dict | None = None) -> tuple[str, dict, bytes]:
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"], seen["headers"] = status, dict(headers)

    out = b"".join(app(_environ(body, session, extra), start_response))
    return seen["status"], seen["headers"], out


def _stub_backend() -> None:
    """Make the backend HTTP client answer each (method, URL) with a copy of its first real response."""
    from gateway_server.backends import http

    real, seen = http.HttpClient.request, {}

    def request(self, method: str, url: str, **kwargs):
        first = seen.get((method, url))
        if first is None:
            first = seen[(method, url)] = real(self, method, url, **kwargs)
        return http.Response(first.status, first.reason, dict(first.headers), first.body, url, method)

    http.HttpClient.request = request


def main() -> None:
    """Start the backend, build the app, time and profile calls."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per timed/profiled loop")
    parser.add_argument("--top", type=int, default=35, help="profile lines to print")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--repeat", type=int, default=5, help="timed loops (the best is printed)")
    parser.add_argument("--no-audit", action="store_true", help="gateway without the audit writer")
    parser.add_argument("--modern", action="store_true",
                        help="drive the modern (2026-07-28) stateless tools/call instead: no session, the _meta "
                             "envelope and the MCP-Protocol-Version/Mcp-Method/Mcp-Name headers")
    parser.add_argument("--cpu-timer", action="store_true",
                        help="profile with this thread's CPU clock, so waits (backend, hub) count for nothing")
    parser.add_argument("--dump", type=Path, metavar="FILE", help="also save the pstats data to FILE (to diff runs)")
    parser.add_argument("--gevent", action="store_true",
                        help="patch with gevent first, as `mcpgw serve` does (the audit writer's CPU then counts)")
    parser.add_argument("--stub-backend", action="store_true",
                        help="answer every backend request with a copy of its first real answer: the gateway's own "
                             "work per call, without the HTTP client, the backend or the hub")
    options = parser.parse_args()
    if options.gevent:
        from gevent import monkey

        monkey.patch_all()

    from gateway_server.app import create_app
    from gateway_server.demo.run import prepare
    from mcpgw_sdk.opening import open_store

    workdir = Path(tempfile.mkdtemp(prefix="mcpgw-profile-"))
    port = free_port()
    backend_url = f"http://127.0.0.1:{port}"
    backend = start([sys.executable, "-m", "gateway_server.demo.backend", "--port", str(port)],
                    workdir / "backend.log", {"PYTHONUNBUFFERED": "1"})
    try:
        wait_url(backend_url + "/users", backend)
        db = f"sqlite:///{workdir / 'profile.db'}"
        os.environ.setdefault("MCPGW_ADMIN_PASSWORD", "profile-only-password")
        prepare(db, backend_url)
        store = open_store(db)
        app = create_app(store=store, host="127.0.0.1", port=5235, reload_interval=3600,
                         audit=not options.no_audit)
        app.start()
        if options.stub_backend:
            _stub_backend()
        status, headers, _ = _call(app, (
            b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
            b'"capabilities":{},"clientInfo":{"name":"profile","version":"1"}}}'), None)
        session = headers["Mcp-Session-Id"]
        # kind -> (template, session, extra environ); --modern times both kinds alternately and profiles modern
        kinds = {"legacy session": (CALL, session, None)}
        if options.modern:
            kinds["modern stateless"] = (MODERN_CALL, None, MODERN_ENVIRON)
        loops = {}
        for kind, (template, sid, extra) in kinds.items():
            status, headers, out = _call(app, (template % 1).encode(), sid, extra)
            if not status.startswith("200") or b'"isError":false' not in out \
                    or (extra and "Mcp-Session-Id" in headers):
                raise SystemExit(f"{kind} tools/call does not work: {status} {out[:300]!r}")
            bodies = [(template % i).encode() for i in range(2, 2 + options.calls)]
            for body in bodies[:500]:
                _call(app, body, sid, extra)

            def loop(bodies=bodies, sid=sid, extra=extra):
                for body in bodies:
                    _call(app, body, sid, extra)

            loops[kind] = loop

        walls: dict[str, list[float]] = {kind: [] for kind in loops}
        cpus: dict[str, list[float]] = {kind: [] for kind in loops}
        for _ in range(options.repeat):
            for kind, run in loops.items():  # interleaved, so drift on a shared machine hits both alike
                started, cpu = time.perf_counter(), time.thread_time()
                run()
                walls[kind].append(time.perf_counter() - started)
                cpus[kind].append(time.thread_time() - cpu)
        for kind in loops:
            print(f"{options.calls} {kind} calls of get_user({EMAIL}) in process, best of {options.repeat}: "
                  f"{min(walls[kind]) / options.calls * 1e3:.3f} ms wall, "
                  f"{min(cpus[kind]) / options.calls * 1e3:.3f} ms CPU per call (this thread: the backend "
                  "excluded; the audit writer too unless --gevent)")
        if options.modern:
            legacy, modern_ = (min(cpus[k]) / options.calls * 1e3 for k in ("legacy session", "modern stateless"))
            print(f"CPU per call modern/legacy {modern_ / legacy:.2f} ({(modern_ - legacy) * 1e3:+.0f} µs); "
                  "the profile below is of the modern call")
        loop = loops["modern stateless" if options.modern else "legacy session"]

        profile = cProfile.Profile(time.thread_time) if options.cpu_timer else cProfile.Profile()
        profile.runcall(loop)
        if options.dump:
            profile.dump_stats(options.dump)
        text = io.StringIO()
        stats = pstats.Stats(profile, stream=text)
        stats.sort_stats(options.sort).print_stats(options.top)
        print(text.getvalue())
        by_file: dict[str, float] = {}
        for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
            where = "socket IO (waits included)" if name in ("<method 'sendall' of '_socket.socket' objects>",
                                                              "<method 'recv_into' of '_socket.socket' objects>") \
                else filename.replace(str(ROOT) + "/", "").split("site-packages/")[-1]
            by_file[where] = by_file.get(where, 0.0) + tottime
        print("own time per call by file (µs, under the profiler):")
        for where, total in sorted(by_file.items(), key=lambda kv: -kv[1])[:options.top]:
            print(f"{total / options.calls * 1e6:9.1f}  {where}")

        app.stop()
        from mcpgw_sdk.records import AuditRecord

        records = [AuditRecord(ts=datetime.now(timezone.utc), tenant="default", prefix=PREFIX, server="users",
                               tool="get_user", outcome="ok", latency_ms=0.3, user=None, key_id=None,
                               session_id=session, error=None) for _ in range(500)]
        took = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            store.write_audit(records)
            took.append(time.perf_counter() - started)
        print(f"write_audit, best of {options.repeat}: 500 records in {min(took) * 1e3:.1f} ms = "
              f"{min(took) / 500 * 1e3:.4f} ms per record")
        store.close()
    finally:
        stop(backend)


if __name__ == "__main__":
    main()
