"""API-key auth benchmark: ``tools/call`` with ``auth: {mode: apikey}`` and without, in one run. Prints; never asserts.

``python bench/auth_bench.py [--quick] [--duration S] [--rounds N]``

Starts the demo backend and one gateway (``python -m gateway_server``) on a temporary
SQLite database holding two copies of the demo document: ``/gateway/demo`` (open) and
``/gateway/keyed`` (``auth: {mode: apikey}``), plus a user and an API key created with
the store. Then it measures ``tools/call get_user`` on both routers with ``wrk``
(unique JSON-RPC id per request, one initialized session each, the key sent as
``Authorization: Bearer``) at 1 and 50 connections, in interleaved rounds, and prints
req/s, p50, p99, gateway CPU per call and the keyed/open ratios. The load is the same
otherwise: same backend, tool, arguments and process.
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from gateway_bench import (  # noqa: E402
    CALL,
    MCP_HEADERS,
    PREFIX,
    cpu_seconds,
    setup,
    start,
    start_backend,
    stop,
    wait_url,
    wrk,
)

KEYED = "/gateway/keyed"


def prepare_keyed(db: str, backend_url: str) -> str:
    """Store the open demo document, a keyed copy of it, a user and an API key; return the key's secret."""
    from gateway_server.demo.run import demo_document, prepare
    from mcpgw_sdk.opening import open_store

    prepare(db, backend_url)
    keyed = copy.deepcopy(demo_document(backend_url))
    keyed["name"] = "demo-users-keyed"
    for router in keyed["routers"]:
        router["prefix"] = KEYED
        router["auth"] = {"mode": "apikey"}
    store = open_store(db)
    try:
        store.save_document(keyed, author="auth bench")
        store.create_user("bench", "bench-only-password", role="member", tenants=[keyed.get("tenant") or "default"])
        _record, secret = store.create_key("bench", keyed.get("tenant") or "default", name="auth bench")
    finally:
        store.close()
    return secret


def session(url: str, headers: dict) -> str:
    """Initialize a Streamable HTTP session with ``headers`` and check one call works; return its id."""
    import requests

    init = requests.post(url, headers={**MCP_HEADERS, **headers}, timeout=10, json={
        "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    init.raise_for_status()
    sid = init.headers["Mcp-Session-Id"]
    all_headers = {**MCP_HEADERS, **headers, "Mcp-Session-Id": sid}
    requests.post(url, headers=all_headers, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                  timeout=10)
    check = requests.post(url, headers=all_headers, data=CALL % 1, timeout=10).json()
    if check.get("result", {}).get("isError") is not False:
        raise SystemExit(f"tools/call on {url} does not work: {check}")
    return sid


def main() -> None:
    """Start the backend and the gateway, measure both routers, print, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    parser.add_argument("--duration", type=float, help="seconds per load run (default 5, quick 2)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds per figure (default 3, quick 1)")
    args = parser.parse_args()
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH (make system-deps installs it)")

    workdir, ports, urls, db, env = setup("mcpgw-auth-bench-", ("backend", "gateway"))
    procs = []
    try:
        procs.append(start_backend(ports["backend"], workdir, env))
        secret = prepare_keyed(db, urls["backend"])
        gateway = start([sys.executable, "-m", "gateway_server", "--db", db, "--port", str(ports["gateway"])],
                        workdir / "gateway.log", env)
        procs.append(gateway)
        wait_url(urls["gateway"] + "/readyz", gateway)
        auth = {"Authorization": f"Bearer {secret}"}
        targets = {}
        for name, prefix, extra in (("open", PREFIX, {}), ("apikey", KEYED, auth)):
            url = urls["gateway"] + prefix + "/mcp"
            sid = session(url, extra)
            targets[name] = (url, {**MCP_HEADERS, **extra, "Mcp-Session-Id": sid})
        import requests

        refused = requests.post(targets["apikey"][0], data=CALL % 2, timeout=10,
                                headers={k: v for k, v in targets["apikey"][1].items() if k != "Authorization"})
        if refused.status_code != 401:
            raise SystemExit(f"the keyed router answered {refused.status_code} without a key, not 401")

        print(f"mcpgw API-key auth benchmark ({args.rounds} round(s) x {args.duration:g} s, {os.cpu_count()} CPUs; "
              f"logs in {workdir}); without the key the keyed router answers 401")
        rows = []
        for conns in (1, 50):
            runs: dict[str, list[dict]] = {name: [] for name in targets}
            for _round in range(args.rounds):
                for name, (url, headers) in targets.items():  # interleaved, so drifts hit both alike
                    before = cpu_seconds(gateway.pid)
                    result = wrk(url, conns=conns, duration=args.duration, method="POST", headers=headers,
                                 body=CALL, workdir=workdir)
                    result["cpu_ms"] = (cpu_seconds(gateway.pid) - before) * 1000 / max(result["calls"], 1)
                    runs[name].append(result)
            for name, results in runs.items():
                rows.append((conns, name, *(statistics.median(r[k] for r in results)
                                            for k in ("rps", "p50", "p99", "cpu_ms")),
                             sum(r["errors"] for r in results)))
        print(f"\n{'conns':>5}  {'auth':<8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/call':>13}{'errors':>8}")
        for conns, name, rps, p50, p99, cpu, errors in rows:
            print(f"{conns:>5}  {name:<8}{rps:>10.0f}{p50:>9.2f}{p99:>9.2f}{cpu:>13.3f}{errors:>8}")
        by = {(r[0], r[1]): r for r in rows}
        print()
        for conns in (1, 50):
            keyed, open_ = by[(conns, "apikey")], by[(conns, "open")]
            print(f"at {conns:>2} conns: apikey/open req/s {keyed[2] / open_[2]:.2f}, p50 apikey - open "
                  f"{keyed[3] - open_[3]:+.2f} ms, CPU/call apikey - open {keyed[5] - open_[5]:+.3f} ms")
    finally:
        for proc in reversed(procs):
            stop(proc)


if __name__ == "__main__":
    main()
