"""Where the gateway spends its CPU on a proxied upstream ``tools/call``. Prints only.

``python bench/profile_upstream.py [--transport stdio|streamable-http] [--era legacy|modern]
[--concurrency N] [--seconds S] [--py-spy FILE]``

Starts what ``bench/upstream_bench.py`` starts (the fixture over HTTP, the gateway with one prefix per
transport and era), drives one row with ``concurrency`` threads for ``seconds`` and prints the gateway's
CPU per call (``/proc/<pid>/stat``). With ``--py-spy FILE`` it records the gateway with ``py-spy record``
meanwhile (``--format raw``: collapsed stacks, one line per stack with its sample count) and prints the
functions with the most samples, self and inclusive. py-spy must be on ``PATH`` or beside this Python.

``--in-process N`` measures the upstream half alone: this process, gevent-patched like the gateway, calls
:meth:`UpstreamServer.call_tool` ``N`` times on the fixture (a stdio child, or the HTTP fixture) and prints
its CPU per call. Under ``valgrind --tool=callgrind`` the difference of the instruction totals of two
runs (``N`` = 100 and 500) over 400 is the instruction count per call, the one figure a busy machine does
not move.
"""

from __future__ import annotations

import sys

if __name__ == "__main__" and "--in-process" in sys.argv:  # the gateway's conditions: patched before imports
    from gevent import monkey

    monkey.patch_all()

import argparse  # noqa: E402
import collections  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import upstream_bench as ub  # noqa: E402


def top(raw: Path, limit: int) -> None:
    """Print the ``limit`` frames with the most samples (self, then inclusive) from py-spy's raw output."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f for f in stack.split(";") if f]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"\n{total} samples; self:")
    for frame, n in own.most_common(limit):
        print(f"{n / total:6.1%}  {frame}")
    print("\ninclusive:")
    for frame, n in inclusive.most_common(limit):
        print(f"{n / total:6.1%}  {frame}")


def in_process(transport: str, era: str, calls: int) -> None:
    """Call the fixture through an :class:`UpstreamServer` of this process ``calls`` times; print CPU per call."""
    from gateway_server.backends import CallContext
    from gateway_server.backends.upstream import UpstreamServer

    procs = []
    if transport == "stdio":
        spec = {"type": "stdio", "command": sys.executable, "args": [ub.FIXTURE]}
    else:
        port = ub.free_port()
        procs.append(subprocess.Popen([sys.executable, ub.FIXTURE, "--transport", "streamable-http", "--port",
                                       str(port), "--json-response"], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        spec = {"type": "streamable-http", "url": f"http://127.0.0.1:{port}/mcp"}
        import requests

        ub.wait_until(lambda: requests.get(spec["url"], timeout=1) is not None, what="the fixture server")
    up = UpstreamServer(name="fx", spec={**spec, "era": ub.ERAS[era], "policy": "onStart"},
                        document={"mcpServers": [{"name": "fx", **spec}]})
    version = ub.ERAS[era] if era == "modern" else "2025-11-25"
    try:
        ub.wait_until(lambda: up.state == "ready", timeout=60, what="the upstream")
        for _ in range(100):  # warm-up
            up.call_tool("echo", {"text": "bench"}, CallContext(protocol_version=version))
        cpu, wall = time.process_time(), time.perf_counter()
        for i in range(calls):
            result = up.call_tool("echo", {"text": "bench"}, CallContext(protocol_version=version,
                                                                        session_id="s", request_id=str(i)))
            assert not result.get("isError"), result
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"in-process {transport} {era}: {calls} calls, {cpu / calls * 1e6:.0f} µs CPU and "
              f"{wall / calls * 1e6:.0f} µs wall per call")
    finally:
        up.close()
        for proc in procs:
            proc.terminate()


def main(argv: list[str] | None = None) -> None:
    """Run one row under load and print the gateway's CPU per call (and its profile)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", default="streamable-http", choices=ub.TRANSPORTS, help="the upstream's")
    parser.add_argument("--era", default="legacy", choices=tuple(ub.ERAS), help="both hops' era")
    parser.add_argument("--concurrency", type=int, default=1, help="client threads")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to load (and record)")
    parser.add_argument("--py-spy", dest="py_spy", default="", help="record the gateway into this raw file")
    parser.add_argument("--top", type=int, default=40, help="frames to print")
    parser.add_argument("--native", action="store_true", help="py-spy --native: C frames too (gevent, libev)")
    parser.add_argument("--in-process", dest="in_process", type=int, default=0,
                        help="call the upstream this many times from this process instead (no gateway)")
    args = parser.parse_args(argv)
    if args.in_process:
        return in_process(args.transport, args.era, args.in_process)
    tmp = Path(tempfile.mkdtemp(prefix="mcpgw-profile-upstream-"))
    procs, where = ub.start(tmp, False, False)
    pid = where["gateway_pid"]
    client = None
    try:
        client = ub.client_for("mcpgw", args.transport, args.era, where)
        ub.load(client, args.concurrency, 1.0)  # warm-up
        spy = None
        if args.py_spy:
            exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([exe, "record", "--pid", str(pid), "--format", "raw", "--rate", "500",
                                    "--duration", str(int(args.seconds) + 1), "--output", args.py_spy,
                                    *(["--native"] if args.native else ["--nonblocking"])], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)  # py-spy attaches; not a synchronisation the figures depend on
        cpu0 = ub.cpu_seconds(pid)
        rate, p50, p99, errors, calls = ub.load(client, args.concurrency, args.seconds)
        cpu = ub.cpu_seconds(pid) - cpu0
        print(f"{args.transport} {args.era} x{args.concurrency}: {rate:.0f} calls/s, p50 {p50:.2f} ms, "
              f"p99 {p99:.2f} ms, {errors} errors, gateway CPU {cpu / max(calls, 1) * 1e6:.0f} µs/call")
        if spy is not None:
            spy.wait(args.seconds + 30)
            top(Path(args.py_spy), args.top)
    finally:
        if client is not None:
            client.close()
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    main()
