"""Upstream MCP benchmark: the gateway's ``tools/call`` overhead over calling the upstream directly. Prints only.

``python bench/upstream_bench.py [--duration S] [--rounds N]``

Starts the conformance fixture server (``tests/fixtures/conformance_server.py``) over Streamable HTTP
(JSON responses), and a gateway (``mcpgw serve``, temporary SQLite) with two prefixes: one whose
upstream is the same fixture over stdio (a process the gateway spawns), one whose upstream is the
Streamable HTTP fixture. Then, with one :class:`mcpgw_sdk.client.McpClient` per target shared by the
load threads (the same client code for direct and proxied calls), it measures ``tools/call echo`` at
concurrency 1 and 10:

- stdio direct: the client spawns its own fixture process and calls it over stdin/stdout;
- stdio through the gateway: Streamable HTTP to the gateway, stdio from the gateway to its process;
- Streamable HTTP direct, and the same fixture through the gateway.

Rounds alternate targets so machine drift hits all alike; figures are medians over rounds. See
``bench/README.md``.
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

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcpgw_sdk.client import McpClient  # noqa: E402

FIXTURE = str(ROOT / "tests" / "fixtures" / "conformance_server.py")
STDIO_PREFIX, HTTP_PREFIX = "/gateway/up-stdio", "/gateway/up-http"


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


def start(tmp: Path) -> tuple[list[subprocess.Popen], str, str]:
    """The HTTP fixture and the gateway; returns (processes, fixture URL, gateway base URL)."""
    procs: list[subprocess.Popen] = []
    fx_port, gw_port = free_port(), free_port()
    log = open(tmp / "servers.log", "ab")  # noqa: SIM115 - lives as long as the processes
    procs.append(subprocess.Popen([sys.executable, FIXTURE, "--transport", "streamable-http", "--port", str(fx_port),
                                   "--json-response"], stdout=log, stderr=log))
    fixture_url = f"http://127.0.0.1:{fx_port}/mcp"
    wait_until(lambda: requests.get(fixture_url, timeout=1) is not None, what="the fixture server")
    from mcpgw_sdk.store import open_store

    db = f"sqlite:///{tmp / 'gw.db'}"
    store = open_store(db, check=False)
    store.upgrade()
    store.save_document({"name": "upstream-bench", "tenant": "default",
                         "routers": [{"prefix": STDIO_PREFIX, "server": "stdio"},
                                     {"prefix": HTTP_PREFIX, "server": "http"}],
                         "mcpServers": [{"name": "stdio", "type": "stdio", "command": sys.executable,
                                         "args": [FIXTURE]},
                                        {"name": "http", "type": "streamable-http", "url": fixture_url}]})
    store.close()
    procs.append(subprocess.Popen([sys.executable, "-m", "gateway_server", "--db", db, "--port", str(gw_port)],
                                  stdout=log, stderr=log, env={**os.environ, "MCPGW_LOG_LEVEL": "WARNING",
                                                               "MCPGW_AUDIT": "false"}))
    base = f"http://127.0.0.1:{gw_port}"

    def ready() -> bool:
        ups = requests.get(f"{base}/readyz", timeout=2).json().get("upstreams") or []
        return len(ups) == 2 and all(u["state"] == "ready" for u in ups)

    wait_until(ready, what="the gateway and its upstreams")
    return procs, fixture_url, base


def load(client: McpClient, concurrency: int, duration: float) -> tuple[float, float, float, int]:
    """(calls/s, p50 ms, p99 ms, errors) of ``tools/call echo`` from ``concurrency`` threads for ``duration`` s."""
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
        return 0.0, 0.0, 0.0, sum(errors)
    p99 = flat[min(len(flat) - 1, int(len(flat) * 0.99))]
    return len(flat) / elapsed, statistics.median(flat) * 1000, p99 * 1000, sum(errors)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians are reported)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="mcpgw-upstream-bench-"))
    print(f"logs in {tmp}")
    procs, fixture_url, base = start(tmp)
    clients: dict[str, McpClient] = {}
    try:
        clients = {
            "stdio direct": McpClient(sys.executable, transport="stdio", args=[FIXTURE], timeout=30).connect(),
            "stdio via gateway": McpClient(f"{base}{STDIO_PREFIX}/mcp", timeout=30).connect(),
            "http direct": McpClient(fixture_url, timeout=30).connect(),
            "http via gateway": McpClient(f"{base}{HTTP_PREFIX}/mcp", timeout=30).connect(),
        }
        for client in clients.values():
            client.call_tool("echo", {"text": "warm-up"})
        results: dict[tuple[str, int], list[tuple[float, float, float, int]]] = {}
        for _ in range(args.rounds):
            for concurrency in (1, 10):
                for name, client in clients.items():
                    results.setdefault((name, concurrency), []).append(load(client, concurrency, args.duration))
        print(f"\ntools/call echo, {args.rounds} round(s) of {args.duration:g} s, medians")
        print(f"{'target':<20} {'conc':>4} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        med: dict[tuple[str, int], tuple[float, float, float]] = {}
        for (name, concurrency), runs in results.items():
            rate = statistics.median(r[0] for r in runs)
            p50 = statistics.median(r[1] for r in runs)
            p99 = statistics.median(r[2] for r in runs)
            med[(name, concurrency)] = (rate, p50, p99)
            print(f"{name:<20} {concurrency:>4} {rate:>9.0f} {p50:>8.2f} {p99:>8.2f} {sum(r[3] for r in runs):>6}")
        print("\nthrough the gateway / direct (calls/s ratio; p50 added by the gateway)")
        for kind in ("stdio", "http"):
            for concurrency in (1, 10):
                direct, via = med[(f"{kind} direct", concurrency)], med[(f"{kind} via gateway", concurrency)]
                ratio = via[0] / direct[0] if direct[0] else float("nan")
                print(f"{kind:<6} conc {concurrency:>2}: {ratio:5.2f}x throughput, +{via[1] - direct[1]:.2f} ms p50")
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
