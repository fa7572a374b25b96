"""Upstream MCP benchmark: what a proxy adds to ``tools/call`` over calling the upstream directly. Prints only.

``python bench/upstream_bench.py [--duration S] [--rounds N] [--no-proxies]``

Starts the conformance fixture (``tests/fixtures/conformance_server.py``) over Streamable HTTP (JSON
responses) and, in front of it over stdio (a process each proxy spawns) and over Streamable HTTP:

- mcpgw (``mcpgw serve``, temporary SQLite), one prefix per transport and era (``era: legacy`` and
  ``era: "2026-07-28"``);
- FastMCP's proxy (``fastmcp.server.create_proxy``, ``bench/fastmcp_proxy.py``) and ``mcp-proxy``, each
  from a virtualenv of its own that this script creates with pip on first use (``fastmcp`` works with
  our pinned ``mcp==2.3.0``; ``mcp-proxy`` does not, so it gets the ``mcp`` it asks for). A row that
  cannot run prints ``n/a`` and why.

The same load client (one :class:`mcpgw_sdk.client.McpClient` per target, in the era measured, shared by
1 or 10 threads) calls ``tools/call echo`` on each target. Rounds alternate targets so machine drift hits
all alike; figures are medians over rounds. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcpgw_sdk.client import McpClient  # noqa: E402

FIXTURE = str(ROOT / "tests" / "fixtures" / "conformance_server.py")
FASTMCP_PROXY = str(ROOT / "bench" / "fastmcp_proxy.py")
TRANSPORTS = ("stdio", "streamable-http")
ERAS = {"legacy": "legacy", "modern": "2026-07-28"}  # era -> McpClient mode and mcpServers[].era
TARGETS = ("direct", "mcpgw", "fastmcp proxy", "mcp-proxy")
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mcpgw"
#: The separate virtualenvs: (directory, what pip installs, the program that shows it works).
VENVS = {"fastmcp proxy": ("bench-proxies", ["mcp==2.3.0", "fastmcp"], "fastmcp"),
         "mcp-proxy": ("bench-mcp-proxy", ["mcp-proxy"], "mcp-proxy")}


def prefix(transport: str, era: str) -> str:
    """The gateway prefix whose upstream is the fixture over ``transport``, pinned to ``era``."""
    return f"/gateway/{'stdio' if transport == 'stdio' else 'http'}-{era}"


def free_port() -> int:
    """A free loopback port."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check, timeout: float = 30.0, what: str = "") -> None:
    """Poll ``check`` until truthy or raise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def venv(kind: str, install: bool) -> tuple[Path | None, str]:
    """The bin directory of the virtualenv for ``kind`` (created with pip when missing), or None and why."""
    name, packages, program = VENVS[kind]
    path = CACHE / name
    if not (path / "bin" / program).exists():
        if not install:
            return None, f"no {path} (run without --no-install)"
        print(f"creating {path}: pip install {' '.join(packages)}", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True)
            subprocess.run([str(path / "bin" / "pip"), "install", "-q", *packages], check=True,
                           stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError) as exc:
            return None, f"pip install {' '.join(packages)} failed: {exc}"
    return path / "bin", ""


def start(tmp: Path, proxies: bool, install: bool) -> tuple[list[subprocess.Popen], dict[str, Any]]:
    """The HTTP fixture, the gateway and the other proxies; returns (processes, where each target is)."""
    procs: list[subprocess.Popen] = []
    fx_port, gw_port = free_port(), free_port()
    log = open(tmp / "servers.log", "ab")  # noqa: SIM115 - lives as long as the processes
    procs.append(subprocess.Popen([sys.executable, FIXTURE, "--transport", "streamable-http", "--port", str(fx_port),
                                   "--json-response"], stdout=log, stderr=log))
    fixture_url = f"http://127.0.0.1:{fx_port}/mcp"
    wait_until(lambda: requests.get(fixture_url, timeout=1) is not None, what="the fixture server")
    from mcpgw_sdk.opening import open_store

    db = f"sqlite:///{tmp / 'gw.db'}"
    store = open_store(db, check=False)
    store.upgrade()
    routers, servers = [], []
    for transport in TRANSPORTS:
        for era, mode in ERAS.items():
            name = prefix(transport, era).rsplit("/", 1)[1]
            routers.append({"prefix": prefix(transport, era), "server": name})
            upstream = {"type": "stdio", "command": sys.executable, "args": [FIXTURE]} if transport == "stdio" \
                else {"type": "streamable-http", "url": fixture_url}
            servers.append({"name": name, "era": mode, **upstream})
    store.save_document({"name": "upstream-bench", "tenant": "default", "routers": routers, "mcpServers": servers})
    store.close()
    procs.append(subprocess.Popen([sys.executable, "-m", "gateway_server", "--db", db, "--port", str(gw_port)],
                                  stdout=log, stderr=log, env={**os.environ, "MCPGW_LOG_LEVEL": "WARNING",
                                                               "MCPGW_AUDIT": "false"}))
    base = f"http://127.0.0.1:{gw_port}"
    where: dict[str, Any] = {"fixture": fixture_url, "mcpgw": base, "gateway_pid": procs[-1].pid, "n/a": {}}

    def ready() -> bool:
        ups = requests.get(f"{base}/readyz", timeout=2).json().get("upstreams") or []
        return len(ups) == len(servers) and all(u["state"] == "ready" for u in ups)

    wait_until(ready, what="the gateway and its upstreams")
    for kind in ("fastmcp proxy", "mcp-proxy"):
        bin_dir, why = venv(kind, install) if proxies else (None, "--no-proxies")
        if bin_dir is None:
            where["n/a"][kind] = why
            continue
        where[kind] = {}
        if kind == "fastmcp proxy":
            for transport, upstream in (("stdio", ["--stdio", sys.executable, FIXTURE]),
                                        ("streamable-http", ["--url", fixture_url])):
                port = free_port()
                procs.append(subprocess.Popen([str(bin_dir / "python"), FASTMCP_PROXY, "--port", str(port), *upstream],
                                              stdout=log, stderr=log))
                where[kind][transport] = f"http://127.0.0.1:{port}/mcp"
        else:
            # stdio upstream: mcp-proxy serves it over Streamable HTTP; an HTTP upstream: mcp-proxy is the
            # stdio server the client spawns (its only direction for that upstream).
            port = free_port()
            procs.append(subprocess.Popen([str(bin_dir / "mcp-proxy"), "--port", str(port), "--log-level", "WARNING",
                                           "--", sys.executable, FIXTURE], stdout=log, stderr=log))
            where[kind]["stdio"] = f"http://127.0.0.1:{port}/mcp"
            where[kind]["streamable-http"] = (str(bin_dir / "mcp-proxy"),
                                              ["--transport", "streamablehttp", "--log-level", "WARNING", fixture_url])
        for url in (u for u in where[kind].values() if isinstance(u, str)):
            try:
                wait_until(lambda url=url: requests.get(url, timeout=1) is not None, timeout=60, what=kind)
            except SystemExit as exc:
                where["n/a"][kind] = str(exc)
    return procs, where


def client_for(target: str, transport: str, era: str, where: dict[str, Any]) -> McpClient:
    """A connected load client for one row."""
    mode = ERAS[era]
    if target == "direct":
        if transport == "stdio":
            return McpClient(sys.executable, transport="stdio", args=[FIXTURE], timeout=30, mode=mode).connect()
        return McpClient(where["fixture"], timeout=30, mode=mode).connect()
    if target == "mcpgw":
        return McpClient(f"{where['mcpgw']}{prefix(transport, era)}/mcp", timeout=30, mode=mode).connect()
    spot = where[target][transport]
    if isinstance(spot, tuple):
        return McpClient(spot[0], transport="stdio", args=spot[1], timeout=30, mode=mode).connect()
    return McpClient(spot, timeout=30, mode=mode).connect()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``, clock-tick resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(client: McpClient, concurrency: int, duration: float) -> tuple[float, float, float, int, int]:
    """(calls/s, p50 ms, p99 ms, errors, calls) of ``tools/call echo`` from ``concurrency`` threads for ``duration`` s."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    stop = time.monotonic() + duration

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                result = client.call_tool("echo", {"text": "bench"}, timeout=30)
                if result.get("isError"):
                    errors[i] += 1
            except Exception:  # noqa: BLE001 - counted, the run goes on
                errors[i] += 1
            latencies[i].append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    begun = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - begun
    flat = sorted(x for part in latencies for x in part)
    if not flat:
        return 0.0, 0.0, 0.0, sum(errors), 0
    p99 = flat[min(len(flat) - 1, int(len(flat) * 0.99))]
    return len(flat) / elapsed, statistics.median(flat) * 1000, p99 * 1000, sum(errors), len(flat)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are reported)")
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help="stdio,streamable-http")
    parser.add_argument("--eras", default=",".join(ERAS), help="legacy,modern")
    parser.add_argument("--no-proxies", action="store_true", help="skip the FastMCP proxy and mcp-proxy rows")
    parser.add_argument("--no-install", action="store_true", help="do not create the proxies' virtualenvs")
    args = parser.parse_args(argv)
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    transports = [t for t in args.transports.split(",") if t]
    eras = [e for e in args.eras.split(",") if e]
    tmp = Path(tempfile.mkdtemp(prefix="mcpgw-upstream-bench-"))
    print(f"logs in {tmp}")
    procs, where = start(tmp, not args.no_proxies, not args.no_install)
    clients: dict[tuple[str, str, str], McpClient] = {}
    missing: dict[tuple[str, str, str], str] = {}
    try:
        for transport in transports:
            for era in eras:
                for target in TARGETS:
                    row = (transport, era, target)
                    if target in where["n/a"]:
                        missing[row] = where["n/a"][target]
                        continue
                    try:
                        client = client_for(target, transport, era, where)
                        client.call_tool("echo", {"text": "warm-up"}, timeout=30)
                        clients[row] = client
                    except Exception as exc:  # noqa: BLE001 - a proxy that cannot serve this era is a row of n/a
                        missing[row] = f"{type(exc).__name__}: {str(exc)[:120]}"
        results: dict[tuple[tuple[str, str, str], int], list[tuple[float, float, float, int, int]]] = {}
        # CPU seconds the gateway process spent during each mcpgw row's runs (the figure the shared machine
        # moves least), and this process's (the load client, also our SDK) during each row's.
        gw_cpu: dict[tuple[tuple[str, str, str], int], float] = {}
        client_cpu: dict[tuple[tuple[str, str, str], int], float] = {}
        gateway_pid = where["gateway_pid"]
        for _ in range(args.rounds):
            for concurrency in (1, 10):
                for row, client in clients.items():
                    gw0, cl0 = cpu_seconds(gateway_pid), time.process_time()
                    results.setdefault((row, concurrency), []).append(load(client, concurrency, args.duration))
                    client_cpu[(row, concurrency)] = client_cpu.get((row, concurrency), 0.0) + time.process_time() - cl0
                    if row[2] == "mcpgw":
                        gw_cpu[(row, concurrency)] = gw_cpu.get((row, concurrency), 0.0) + cpu_seconds(gateway_pid) - gw0
        print(f"\ntools/call echo, {args.rounds} round(s) of {args.duration:g} s, medians (min-max of calls/s); "
              "CPU µs per call over all rounds: the gateway's (gw) and the load client's (client)")
        print(f"{'transport':<16} {'era':<7} {'target':<14} {'conc':>4} {'calls/s':>8} {'range':>11} "
              f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6} {'gw µs':>6} {'client µs':>9}")
        med: dict[tuple[tuple[str, str, str], int], tuple[float, float, float]] = {}
        for (row, concurrency), runs in results.items():
            rate = statistics.median(r[0] for r in runs)
            p50 = statistics.median(r[1] for r in runs)
            p99 = statistics.median(r[2] for r in runs)
            med[(row, concurrency)] = (rate, p50, p99)
            spread = f"{min(r[0] for r in runs):.0f}-{max(r[0] for r in runs):.0f}"
            calls = sum(r[4] for r in runs) or 1
            gw = f"{gw_cpu[(row, concurrency)] / calls * 1e6:.0f}" if (row, concurrency) in gw_cpu else "-"
            print(f"{row[0]:<16} {row[1]:<7} {row[2]:<14} {concurrency:>4} {rate:>8.0f} {spread:>11} {p50:>7.2f} "
                  f"{p99:>7.2f} {sum(r[3] for r in runs):>6} {gw:>6} {client_cpu[(row, concurrency)] / calls * 1e6:>9.0f}")
        for row, why in missing.items():
            print(f"{row[0]:<16} {row[1]:<7} {row[2]:<14}  n/a: {why}")
        print("\nproxy vs direct, same transport and era, same run (targets: +0.3 ms p50 at 1 client, "
              ">= 0.85x calls/s at 10)")
        print(f"{'transport':<16} {'era':<7} {'proxy':<14} {'+p50@1':>8} {'+p99@1':>8} {'x@1':>6} "
              f"{'+p50@10':>8} {'+p99@10':>8} {'x@10':>6}")
        for transport in transports:
            for era in eras:
                direct = (transport, era, "direct")
                for target in TARGETS[1:]:
                    row = (transport, era, target)
                    if row not in clients or direct not in clients:
                        print(f"{transport:<16} {era:<7} {target:<14} {'n/a':>8}")
                        continue
                    cells = []
                    for concurrency in (1, 10):
                        d, v = med[(direct, concurrency)], med[(row, concurrency)]
                        ratio = v[0] / d[0] if d[0] else float("nan")
                        cells.append(f"{v[1] - d[1]:>+8.2f} {v[2] - d[2]:>+8.2f} {ratio:>5.2f}x")
                    print(f"{transport:<16} {era:<7} {target:<14} {' '.join(cells)}")
    finally:
        for client in clients.values():
            client.close()
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
