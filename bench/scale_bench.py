"""Scale benchmark: idle streams, big catalogs, big results; each beside a baseline tree. Prints; never asserts.

``python bench/scale_bench.py [--quick] [--baseline DIR] [--only streams,catalog,results]``
(``make bench`` runs it)

- **streams**: gateway RSS delta over N idle HTTP+SSE streams, Streamable HTTP GET streams,
  2026-07-28 ``subscriptions/listen`` streams and legacy sessions without a stream; a fresh
  gateway per kind and tree, so one kind's freed memory does not hide the next one's.
- **catalog**: ``tools/list`` pages over one prefix of 10,000 REST tools (p50 per page),
  the reload of 10,000 documents (seconds from the write until ``/readyz`` shows it) and
  ``documents.validate`` of one document of 500 tools (median ms).
- **results**: 4 concurrent ``tools/call`` of a REST tool whose backend answers 20 MB of JSON:
  the gateway's peak RSS growth (``VmHWM`` reset through ``/proc/PID/clear_refs``) over the
  result size times the concurrency.

``--baseline DIR`` measures the gateway of another source tree (``git archive`` of a commit) in the
same run, interleaved with this one. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gateway_bench import (  # noqa: E402
    BENCH_ENV,
    MODERN_VERSION,
    PREFIX,
    ROOT,
    free_port,
    one_tool_documents,
    rss_kib,
    setup,
    start,
    start_backend,
    stop,
    wait_url,
    write_and_wait,
)

LIMITS_ENV = {"MCPGW_MAX_SESSIONS": "0", "MCPGW_MAX_SESSIONS_PER_ROUTER": "0", "MCPGW_MAX_SESSIONS_PER_PRINCIPAL": "0",
              "MCPGW_MAX_LISTEN_PER_PRINCIPAL": "0", "MCPGW_AUDIT": "false"}
KINDS = ("sse", "get", "listen", "session")
KIND_NAMES = {"sse": "HTTP+SSE stream (GET P/sse, initialized)", "get": "Streamable HTTP GET stream (session + GET)",
              "listen": "subscriptions/listen stream (2026-07-28)", "session": "legacy session, no stream"}
TARGETS = {"sse": 12.0, "get": 12.0, "listen": 12.0, "session": 4.0}


def raise_nofile(want: int) -> None:
    """Raise this process's open-files soft limit toward ``want`` (children inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, want)), hard))


def gateway(tree: Path | None, db: str, workdir: Path, name: str, env: dict, interval: float = 1.0):
    """Start ``mcpgw serve`` from ``tree`` (None: this checkout) on a free port; return (proc, url)."""
    port = free_port()
    extra = {**env, **LIMITS_ENV}
    if tree is not None:
        extra["PYTHONPATH"] = str(tree)
    proc = start([sys.executable, "-m", "gateway_server", "--db", db, "--port", str(port), "--reload-interval",
                  str(interval)], workdir / f"{name}.log", extra, cwd=tree or ROOT)
    url = f"http://127.0.0.1:{port}"
    wait_url(url + "/readyz", proc)
    return proc, url


def trees(args) -> list[tuple[str, Path | None]]:
    """The trees to measure: ``baseline`` (when given) and ``current``."""
    return ([("baseline", args.baseline)] if args.baseline else []) + [("current", None)]


# -- the holder of idle streams (a separate, gevent-patched process) ---------------

def _holder(spec: dict) -> None:
    from gevent import monkey

    monkey.patch_all()
    import http.client
    import socket

    from gevent.pool import Pool

    raise_nofile(spec["count"] + 500)
    host, port = "127.0.0.1", spec["port"]
    prefix, kind = spec["prefix"], spec["kind"]
    held: list = []
    failures: list[str] = []
    json_headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}

    def conn():
        c = http.client.HTTPConnection(host, port, timeout=60)
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return c

    def initialize(c, version="2025-06-18"):
        c.request("POST", prefix + "/mcp", headers=json_headers, body=json.dumps({
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}))
        resp = c.getresponse()
        resp.read()
        sid = resp.getheader("Mcp-Session-Id")
        c.request("POST", prefix + "/mcp", headers={**json_headers, "Mcp-Session-Id": sid},
                  body='{"jsonrpc":"2.0","method":"notifications/initialized"}')
        c.getresponse().read()
        return sid

    def open_one(_i: int) -> None:
        try:
            if kind == "session":
                c = conn()
                initialize(c)
                c.close()
                held.append(None)
            elif kind == "get":
                c = conn()
                sid = initialize(c)
                c.request("GET", prefix + "/mcp", headers={"Accept": "text/event-stream", "Mcp-Session-Id": sid,
                                                           "MCP-Protocol-Version": "2025-06-18"})
                resp = c.getresponse()
                if resp.status != 200:
                    raise RuntimeError(f"GET answered {resp.status}")
                resp.readline()
                held.append(c)
            elif kind == "listen":
                c = conn()
                c.request("POST", prefix + "/mcp", headers={
                    **json_headers, "MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "subscriptions/listen"},
                    body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {
                        "notifications": {"toolsListChanged": True}, "_meta": {
                            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                            "io.modelcontextprotocol/clientCapabilities": {}}}}))
                resp = c.getresponse()
                if resp.status != 200:
                    raise RuntimeError(f"listen answered {resp.status}: {resp.read()[:200]!r}")
                while resp.readline().strip():  # the acknowledgement event
                    pass
                held.append(c)
            else:  # sse
                from gateway_bench import _SseSession

                session = _SseSession(f"http://{host}:{port}", prefix)
                session.initialize()
                session.post_conn.close()
                session.post_conn = None
                held.append(session)
        except Exception as exc:  # noqa: BLE001 - counted and the first few shown
            failures.append(repr(exc)[:200])

    Pool(spec.get("parallel", 50)).map(open_one, range(spec["count"]))
    print("READY " + json.dumps({"opened": len(held), "failed": len(failures), "why": failures[:3]}), flush=True)
    sys.stdin.read()


def idle_streams(args, workdir: Path, db: str) -> list[dict]:
    """Per kind and tree: a fresh gateway, N idle streams (or sessions) opened, RSS after − before."""
    rows = []
    for kind in args.kinds.split(","):
        for name, tree in trees(args):
            proc, url = gateway(tree, db, workdir, f"{name}-{kind}", BENCH_ENV)
            try:
                time.sleep(1.0)
                before = rss_kib(proc.pid)
                holder = subprocess.Popen([sys.executable, __file__, "--holder", json.dumps({
                    "kind": kind, "count": args.streams, "port": int(url.rsplit(":", 1)[1]), "prefix": PREFIX})],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                try:
                    line = holder.stdout.readline()
                    if not line.startswith("READY "):
                        raise SystemExit(f"holder failed: {line}")
                    ready = json.loads(line[6:])
                    time.sleep(2.0)  # connections of finished requests close; the server settles
                    after = rss_kib(proc.pid)
                finally:
                    holder.stdin.close()
                    holder.wait(120)
            finally:
                stop(proc)
            per = (after - before) / max(ready["opened"], 1)
            rows.append({"kind": kind, "tree": name, **ready, "before_kib": before, "after_kib": after,
                         "kib_each": per})
            why = f" (e.g. {ready['why'][0]})" if ready["failed"] else ""
            print(f"  {KIND_NAMES[kind]:<44}{name:<9}{ready['opened']:>7} open {ready['failed']:>5} failed  RSS "
                  f"{before / 1024:7.1f} -> {after / 1024:7.1f} MiB = {per:6.2f} KiB each (target <= "
                  f"{TARGETS[kind]:g}){why}", flush=True)
    return rows


# -- big catalogs --------------------------------------------------------------------

def catalog_document(tools: int, backend: str, name: str = "catalog", prefix: str = "/catalog") -> dict:
    """One document whose prefix serves ``tools`` REST tools (varied args, so validation has work to do)."""
    return {"name": name, "tenant": "catalog", "routers": [{"server": "s", "prefix": prefix}],
            "servers": [{"name": "s", "config": {"base": backend}}],
            "tools": [{"name": f"tool_{i:05d}", "description": f"Tool number {i}: gets a user by email.",
                       "method": "POST" if i % 3 == 0 else "GET",
                       "endpoint": "{{ config.base }}/users/{email}" if i % 3 else "{{ config.base }}/users",
                       "headers": {"X-Tool": f"t{i}"},
                       "args": [{"name": "email", "position": "path" if i % 3 else "body", "required": True,
                                 "type": "string", "description": "the user's email"},
                                {"name": "limit", "position": "query", "type": "integer"}],
                       "annotations": {"readOnlyHint": i % 3 != 0}}
                      for i in range(tools)]}


def _validate_timer(spec: dict) -> None:
    from mcpgw_sdk import documents

    doc = catalog_document(spec["tools"], "http://127.0.0.1:9")
    times = []
    for _ in range(spec["repeat"]):
        started = time.perf_counter()
        documents.validate(doc)
        times.append(time.perf_counter() - started)
    print("VALIDATE " + json.dumps({"median_ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000}))


def validate_time(tree: Path | None, tools: int, repeat: int) -> dict:
    """``documents.validate`` of one document of ``tools`` tools, in a fresh process of ``tree``."""
    env = {**os.environ, **({"PYTHONPATH": str(tree)} if tree else {})}
    out = subprocess.run([sys.executable, __file__, "--validate", json.dumps({"tools": tools, "repeat": repeat})],
                         capture_output=True, text=True, env=env, cwd=tree or ROOT, timeout=600)
    for line in out.stdout.splitlines():
        if line.startswith("VALIDATE "):
            return json.loads(line[9:])
    raise SystemExit(f"validation timer failed: {out.stderr[-2000:]}")


def list_pages(url: str) -> dict:
    """Page through ``tools/list`` (modern stateless POSTs); times per page."""
    import requests

    headers = {"Content-Type": "application/json", "Accept": "application/json", "MCP-Protocol-Version": MODERN_VERSION,
               "Mcp-Method": "tools/list"}
    session = requests.Session()
    times, tools, cursor, pages = [], 0, None, 0
    for _round in range(3):
        cursor, first = None, True
        while first or cursor:
            first = False
            params = {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                                "io.modelcontextprotocol/clientCapabilities": {}}}
            if cursor:
                params["cursor"] = cursor
            body = json.dumps({"jsonrpc": "2.0", "id": pages + 1, "method": "tools/list", "params": params})
            started = time.perf_counter()
            resp = session.post(url, data=body, headers=headers, timeout=60)
            result = resp.json()["result"]
            times.append(time.perf_counter() - started)
            pages += 1
            if _round == 0:
                tools += len(result["tools"])
            cursor = result.get("nextCursor")
    times.sort()
    return {"tools": tools, "pages": pages // 3, "p50_ms": times[len(times) // 2] * 1000,
            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000}


def reload_many(url: str, db: str, documents: int, backend: str) -> dict:
    """Write ``documents`` one-tool documents in one transaction; seconds until ``/readyz`` shows the revision."""
    docs = one_tool_documents(documents, backend, "many")
    first = write_and_wait(url, db, docs)
    edited = dict(docs[documents // 2], tools=[{**docs[documents // 2]["tools"][0], "description": "edited"}])
    return {**first, "edit": write_and_wait(url, db, [edited])}


def catalogs(args, workdir: Path, backend: str) -> None:
    """tools/list pages over 10,000 tools, the reload of 10,000 documents, validation of 500 tools."""
    from mcpgw_sdk.opening import open_store

    print(f"\nbig catalogs ({args.tools} tools on one prefix; {args.documents} documents; "
          f"validation of {args.validate_tools} tools)", flush=True)
    for name, tree in trees(args):
        got = validate_time(tree, args.validate_tools, 7)
        print(f"  validate {args.validate_tools} tools   {name:<9} median {got['median_ms']:8.1f} ms "
              f"(min {got['min_ms']:.1f}; target < 50 ms)", flush=True)
    for name, tree in trees(args):
        db = f"sqlite:///{workdir / f'catalog-{name}.db'}"
        store = open_store(db, check=False)
        try:
            store.upgrade()
            started = time.monotonic()
            store.import_documents([catalog_document(args.tools, backend)], author="bench")
            wrote = time.monotonic() - started
        finally:
            store.close()
        proc, url = gateway(tree, db, workdir, f"{name}-catalog", BENCH_ENV, interval=args.reload_interval)
        try:
            pages = list_pages(url + "/catalog/mcp")
            print(f"  tools/list             {name:<9} {pages['tools']} tools in {pages['pages']} pages: p50 "
                  f"{pages['p50_ms']:.2f} ms, p99 {pages['p99_ms']:.2f} ms per page (target p50 <= 5 ms; the "
                  f"document imported in {wrote:.1f} s)", flush=True)
            rel = reload_many(url, db, args.documents, backend)
            print(f"  reload {args.documents} documents {name:<9} written in {rel['write_s']:.1f} s, visible "
                  f"{rel['visible_s']:.2f} s after the write (poll interval {args.reload_interval:g} s; "
                  f"{rel['routes']} routes; target <= 2 s)", flush=True)
            print(f"  then one of them edited  {name:<9} visible {rel['edit']['visible_s']:.2f} s after the write",
                  flush=True)
        finally:
            stop(proc)


# -- big results ---------------------------------------------------------------------

def _big_backend(spec: dict) -> None:
    from gevent import monkey

    monkey.patch_all()
    from gevent.pywsgi import WSGIServer

    item = '{"id": %d, "name": "user %d", "email": "user%d@example.com", "note": "' + "x" * 60 + '"},'
    rows = []
    size = 2
    i = 0
    while size < spec["bytes"]:
        row = item % (i, i, i)
        rows.append(row)
        size += len(row)
        i += 1
    body = ("[" + "".join(rows).rstrip(",") + "]").encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    WSGIServer(("127.0.0.1", spec["port"]), app, log=None).serve_forever()


def _reset_peak(pid: int) -> bool:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def big_results(args, workdir: Path) -> None:
    """``args.concurrency`` concurrent calls of a REST tool answering ``args.result_mb`` MB: peak RSS growth."""
    import threading

    import requests

    from mcpgw_sdk.opening import open_store

    size = int(args.result_mb * 1_000_000)
    port = free_port()
    backend = start([sys.executable, __file__, "--big-backend", json.dumps({"port": port, "bytes": size})],
                    workdir / "big-backend.log")
    print(f"\nbig results ({args.concurrency} concurrent tools/call of a REST tool answering "
          f"{args.result_mb:g} MB of JSON)", flush=True)
    try:
        wait_url(f"http://127.0.0.1:{port}/", backend)
        doc = {"name": "big", "tenant": "bench", "routers": [{"server": "s", "prefix": "/big"}],
               "servers": [{"name": "s", "config": {}}],
               "tools": [{"name": "dump", "method": "GET", "endpoint": f"http://127.0.0.1:{port}/",
                          "maxResponseBytes": size * 2, "timeout": 120}]}
        for name, tree in trees(args):
            db = f"sqlite:///{workdir / f'big-{name}.db'}"
            store = open_store(db, check=False)
            try:
                store.upgrade()
                store.import_documents([doc], author="bench")
            finally:
                store.close()
            proc, url = gateway(tree, db, workdir, f"{name}-big", BENCH_ENV)
            try:
                headers = {"Content-Type": "application/json", "Accept": "application/json",
                           "MCP-Protocol-Version": MODERN_VERSION, "Mcp-Method": "tools/call", "Mcp-Name": "dump"}

                def call(ident: int, sizes: list, url: str = url, headers: dict = headers) -> None:
                    body = json.dumps({"jsonrpc": "2.0", "id": ident, "method": "tools/call", "params": {
                        "name": "dump", "arguments": {}, "_meta": {
                            "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                            "io.modelcontextprotocol/clientCapabilities": {}}}})
                    resp = requests.post(url + "/big/mcp", data=body, headers=headers, timeout=300)
                    answer = resp.json()
                    result = answer.get("result") or {}
                    if result.get("isError") is not False:
                        sizes.append(-1)
                        print(f"    error: {str(answer)[:300]}")
                    else:
                        sizes.append(len(resp.content))

                warm: list = []
                call(0, warm)  # pools, templates and imports warmed; then measure the next wave's peak
                time.sleep(0.5)
                before = rss_kib(proc.pid)
                reset = _reset_peak(proc.pid)
                sizes: list = []
                started = time.monotonic()
                threads = [threading.Thread(target=call, args=(i + 1, sizes)) for i in range(args.concurrency)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                elapsed = time.monotonic() - started
                peak = _peak_kib(proc.pid) if reset else rss_kib(proc.pid)
                growth_mb = (peak - before) / 1024
                total = size * args.concurrency / 2**20
                print(f"  {name:<9} {sum(1 for s in sizes if s > 0)}/{len(sizes)} answers of "
                      f"{max(sizes) / 2**20:.1f} MiB in {elapsed:.1f} s; peak RSS growth {growth_mb:7.1f} MiB = "
                      f"{growth_mb / total:.2f} x (result size x concurrency = {total:.0f} MiB)"
                      f"{'' if reset else ' (VmHWM not resettable: RSS after)'}", flush=True)
            finally:
                stop(proc)
    finally:
        stop(backend)


def main() -> None:
    """Parse options, start what each section needs, print."""
    parser = argparse.ArgumentParser(description="mcpgw scale benchmark (prints figures, never asserts)")
    parser.add_argument("--quick", action="store_true", help="1,000 streams, 2,000 tools and documents")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="also measure the gateway of the source tree DIR")
    parser.add_argument("--only", default="streams,catalog,results", help="sections: streams,catalog,results")
    parser.add_argument("--streams", type=int, help="idle streams (or sessions) per kind (default 10000)")
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"kinds of idle streams (default {','.join(KINDS)})")
    parser.add_argument("--tools", type=int, help="tools on the catalog prefix (default 10000)")
    parser.add_argument("--documents", type=int, help="documents for the reload figure (default 10000)")
    parser.add_argument("--validate-tools", type=int, default=500, help="tools in the validated document")
    parser.add_argument("--reload-interval", type=float, default=1.0, help="the gateway's poll interval (s)")
    parser.add_argument("--result-mb", type=float, default=20.0, help="size of the big REST result (MB)")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent big calls")
    args = parser.parse_args()
    args.streams = args.streams or (1000 if args.quick else 10000)
    args.tools = args.tools or (2000 if args.quick else 10000)
    args.documents = args.documents or (2000 if args.quick else 10000)
    sections = set(args.only.split(","))
    raise_nofile(args.streams + 2000)
    from gateway_server.demo.run import prepare

    workdir, ports, urls, db, env = setup("mcpgw-scale-", ("backend",))
    print(f"mcpgw scale benchmark ({os.cpu_count()} CPUs; trees: {', '.join(n for n, _ in trees(args))}; "
          f"logs in {workdir})", flush=True)
    backend = start_backend(ports["backend"], workdir, env)
    try:
        prepare(db, urls["backend"])
        if "streams" in sections:
            print(f"\nidle streams ({args.streams} per kind, a fresh gateway per kind and tree; RSS after - before "
                  "over the number open)", flush=True)
            idle_streams(args, workdir, db)
        if "catalog" in sections:
            catalogs(args, workdir, urls["backend"])
        if "results" in sections:
            big_results(args, workdir)
    finally:
        stop(backend)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--holder":
        _holder(json.loads(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "--validate":
        _validate_timer(json.loads(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "--big-backend":
        _big_backend(json.loads(sys.argv[2]))
    else:
        sys.path.insert(0, str(ROOT))
        main()
