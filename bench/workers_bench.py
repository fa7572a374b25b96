"""gunicorn workers: does ``-k gevent -w 2`` serve more ``tools/call`` than ``-w 1``? Prints; never asserts.

``python bench/workers_bench.py [--quick] [--duration S] [--rounds N] [--conns N] [--redis URL] [--baseline DIR]``

Starts the demo REST backend and, for each configuration, the gateway under
``gunicorn -k gevent -w 1`` and ``-w 2`` on one SQLite database holding the demo document:

- **legacy**: ``tools/call`` on one Streamable HTTP session, sessions in Redis (``MCPGW_REDIS_URL``,
  default ``redis://127.0.0.1:6379/15``), so every worker serves the session;
- **modern**: the 2026-07-28 stateless call (no session, no Redis).

``wrk`` (or the Python load generator) drives 50 connections; rounds alternate ``-w 1`` and ``-w 2``.
Per run it prints calls/s, p50, and the CPU the gateway's workers spent per call (summed over the
worker processes, from ``/proc``), and the cores used by the workers, the backend, the load generator
(``RUSAGE_CHILDREN`` around its run) and the whole machine (``/proc/stat``).

On a 2-core machine the load generator and the backend compete with the workers for the same cores,
so ``-w 2`` can never get two whole cores: the raw ratio ``w2/w1 calls/s`` understates what a second
worker adds. The **CPU-accounted ratio** answers "what would two workers serve with a core each":
``2 x (CPU per call at -w 1) / (CPU per call at -w 2)`` — 2.0 when a second worker costs nothing per
call. ``machine busy`` (cores busy, every process) minus ``workers cores`` says what the backend, the load
generator and anything else running took: what the workers could not have had at all.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from gateway_bench import (  # noqa: E402
    CALL,
    MCP_HEADERS,
    MODERN_CALL,
    MODERN_HEADERS,
    PREFIX,
    cpu_seconds,
    free_port,
    mcp_session,
    modern_check,
    pyload,
    setup,
    start,
    start_backend,
    stop,
    wait_url,
    wrk,
)


def children(pid: int) -> list[int]:
    """The worker processes of gunicorn master ``pid``."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and its live children (the master and its workers)."""
    total = 0.0
    for p in [pid, *children(pid)]:
        try:
            total += cpu_seconds(p)
        except OSError:
            pass
    return total


def machine_cpu() -> float:
    """CPU seconds the whole machine has spent busy (all cores; from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def start_gunicorn(workers: int, tree: Path, db: str, env: dict, workdir: Path, name: str) -> tuple:
    """``gunicorn -k gevent -w N gateway_server.wsgi:app`` from ``tree``; (process, URL)."""
    port = free_port()
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    proc = start([gunicorn, "-k", "gevent", "-w", str(workers), "--graceful-timeout", "2", "--keep-alive", "10",
                  "-b", f"127.0.0.1:{port}", "gateway_server.wsgi:app"], workdir / f"{name}.log",
                 {**env, "MCPGW_DATABASE_URL": db, "PYTHONPATH": str(tree)}, cwd=tree)
    url = f"http://127.0.0.1:{port}"
    wait_url(url + "/readyz", proc)
    # Each worker loads lazily on its first request: warm them all before measuring.
    import requests

    for _ in range(8 * workers):
        requests.get(url + "/readyz", timeout=30)
    return proc, url


def main() -> None:
    """Start the backend, then each gunicorn configuration; measure interleaved; print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 3 s")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 5, quick 3)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument("--conns", type=int, default=50, help="concurrent connections (default 50)")
    parser.add_argument("--redis", default=os.environ.get("MCPGW_BENCH_REDIS", "redis://127.0.0.1:6379/15"),
                        help="Redis for the legacy sessions (default redis://127.0.0.1:6379/15)")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="run the gateway from another source tree DIR instead (e.g. `git archive` of a commit)")
    args = parser.parse_args()
    args.duration = args.duration or (3.0 if args.quick else 5.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    tree = (args.baseline or ROOT).resolve()

    from gateway_server.demo.run import prepare

    workdir, ports, urls, db, env = setup("mcpgw-workers-", ("backend",))
    use_wrk = shutil.which("wrk") is not None
    procs = []
    try:
        backend = start_backend(ports["backend"], workdir, env)
        procs.append(backend)
        prepare(db, urls["backend"])
        print(f"mcpgw workers benchmark ({args.rounds} round(s) x {args.duration:g} s, {args.conns} connections, "
              f"{os.cpu_count()} CPUs, load generator {'wrk' if use_wrk else 'python'}; tree {tree}; "
              f"logs in {workdir})")
        results: dict[tuple[str, int], list[dict]] = {}
        for era in ("legacy", "modern"):
            extra = {"MCPGW_REDIS_URL": args.redis} if era == "legacy" else {}
            servers = {}
            try:
                for workers in (1, 2):
                    proc, url = start_gunicorn(workers, tree, db, {**env, **extra}, workdir, f"{era}-w{workers}")
                    procs.append(proc)
                    mcp = url + PREFIX + "/mcp"
                    if era == "legacy":
                        target = dict(url=mcp, method="POST", headers={**MCP_HEADERS, "Mcp-Session-Id": mcp_session(mcp)},
                                      body=CALL)
                    else:
                        why_not = modern_check(mcp)
                        if why_not:
                            raise SystemExit(f"modern tools/call does not work under gunicorn: {why_not}")
                        target = dict(url=mcp, method="POST", headers=MODERN_HEADERS, body=MODERN_CALL)
                    servers[workers] = (proc, target)
                for _round in range(args.rounds):
                    for workers, (proc, target) in servers.items():  # interleaved: drift hits both alike
                        before, machine_before, backend_before = tree_cpu(proc.pid), machine_cpu(), cpu_seconds(backend.pid)
                        started = time.monotonic()
                        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
                        if use_wrk:
                            out = wrk(target["url"], conns=args.conns, duration=args.duration, method=target["method"],
                                      headers=target["headers"], body=target["body"], workdir=workdir)
                        else:
                            out = pyload({"mode": "http", "conns": args.conns, "duration": args.duration, **target})
                        elapsed = time.monotonic() - started
                        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
                        # wrk is a child this process waited for; the Python load generator runs in one too.
                        out["loadgen"] = (children_after.ru_utime + children_after.ru_stime - children_before.ru_utime
                                          - children_before.ru_stime) / elapsed
                        calls = max(out["calls"], 1)
                        out["cpu_ms"] = (tree_cpu(proc.pid) - before) * 1000 / calls
                        out["busy"] = (machine_cpu() - machine_before) / elapsed  # cores busy, all processes
                        out["backend"] = (cpu_seconds(backend.pid) - backend_before) / elapsed
                        out["workers_cores"] = out["cpu_ms"] * calls / 1000 / elapsed
                        results.setdefault((era, workers), []).append(out)
            finally:
                for proc, _target in servers.values():
                    stop(proc)
                    procs.remove(proc)

        def med(era: str, workers: int, key: str) -> float:
            return statistics.median(r[key] for r in results[(era, workers)])

        print(f"\n{'era':<8}{'workers':>8}{'calls/s':>10}{'p50 ms':>9}{'errors':>8}{'CPU ms/call':>13}"
              f"{'workers cores':>15}{'backend cores':>15}{'loadgen cores':>15}{'machine busy':>14}   command")
        for (era, workers), runs in results.items():
            env_text = f"MCPGW_REDIS_URL={args.redis} " if era == "legacy" else ""
            print(f"{era:<8}{workers:>8}{med(era, workers, 'rps'):>10.0f}{med(era, workers, 'p50'):>9.2f}"
                  f"{sum(r['errors'] for r in runs):>8}{med(era, workers, 'cpu_ms'):>13.3f}"
                  f"{med(era, workers, 'workers_cores'):>15.2f}{med(era, workers, 'backend'):>15.2f}"
                  f"{med(era, workers, 'loadgen'):>15.2f}"
                  f"{med(era, workers, 'busy'):>14.2f}   {env_text}gunicorn -k gevent -w {workers} "
                  "gateway_server.wsgi:app")
        print()
        for era in ("legacy", "modern"):
            raw = med(era, 2, "rps") / med(era, 1, "rps")
            accounted = 2 * med(era, 1, "cpu_ms") / med(era, 2, "cpu_ms")
            left = 2 - (med(era, 2, "busy") - med(era, 2, "workers_cores"))
            others = med(era, 2, "busy") - med(era, 2, "workers_cores") - med(era, 2, "backend") - med(era, 2, "loadgen")
            print(f"{era}: -w 2 / -w 1 calls/s {raw:.2f} (target 1.7); CPU-accounted ratio {accounted:.2f} "
                  f"(2 x CPU per call at -w 1 / at -w 2); at -w 2 everything else (backend, load generator, other jobs) "
                  f"left the workers {left:.2f} of 2 cores ({others:.2f} of them neither backend nor load generator); per-run calls/s -w 1 {[round(r['rps']) for r in results[(era, 1)]]}, "
                  f"-w 2 {[round(r['rps']) for r in results[(era, 2)]]}")
    finally:
        for proc in reversed(procs):
            stop(proc)
        # The legacy sessions this run left in its Redis database expire with their TTL.


if __name__ == "__main__":
    main()
