"""What the security limits cost on the tool-call path. Prints figures; never asserts.

``python bench/hardening_bench.py [--n 20000] [--baseline-rev REV] [--quick]``

In process, interleaved, medians of 5 rounds:

- rendering the templates a typical REST tool renders per call (endpoint, a header, a JSON
  request body) with mcpgw's bounded sandbox (:class:`mcpgw_sdk.templates.Template`: deadline, size
  limits, loop ticks) beside Jinja2's plain ``SandboxedEnvironment`` rendering the same text (the
  floor: no limits at all);
- the outbound guard's decision for a document-literal loopback authority: a cached decision (what a
  call pays while the cache is warm), a fresh one (resolution plus classification, paid once per host
  every few seconds), and ``classify`` alone on an IPv6 address that embeds an IPv4 one.

With ``--baseline-rev REV`` it also runs ``gateway_bench.py --calls-only`` with the tree of REV as the
``baseline`` row (``git archive``), so the whole ``tools/call`` path before and after the limits is
measured beside the backend and the forwarder floor in one run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ENDPOINT = "{{ config.base }}/users/{{ args.email }}"
HEADER = "Bearer {{ config.token }}"
BODY = '{"name": {{ args.name | tojson }}, "tags": [{% for t in args.tags %}"{{ t }}"{% if not loop.last %}, {% endif %}{% endfor %}]}'
CONTEXT = {"args": {"email": "ada@example.com", "name": "Ada Lovelace", "tags": ["a", "b", "c", "d"]},
           "config": {"base": "http://127.0.0.1:5236", "token": "t0k3n"}, "request": {"headers": {}}}


def _per_call(fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def _rounds(cases: dict, n: int, rounds: int) -> dict[str, float]:
    seen: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(rounds):
        for name, fn in cases.items():  # interleaved, so drift hits every case alike
            seen[name].append(_per_call(fn, n))
    return {name: statistics.median(values) for name, values in seen.items()}


def render_figures(n: int, rounds: int) -> None:
    from jinja2.sandbox import SandboxedEnvironment

    from mcpgw_sdk.templates import Template

    plain_env = SandboxedEnvironment()
    plain = [plain_env.from_string(t) for t in (ENDPOINT, HEADER, BODY)]
    bounded = [Template(t, field="bench") for t in (ENDPOINT, HEADER, BODY)]
    for tpl in bounded:  # compile outside the timing, as the gateway does on the first call
        tpl.render(CONTEXT)

    def run_plain() -> None:
        for tpl in plain:
            tpl.render(CONTEXT)

    def run_bounded() -> None:
        for tpl in bounded:
            tpl.render(CONTEXT)

    figures = _rounds({"plain sandbox (floor)": run_plain, "mcpgw bounded render": run_bounded}, n, rounds)
    print("\nTemplate rendering per call (endpoint + header + JSON body), µs")
    for name, value in figures.items():
        print(f"  {name:<28} {value:8.2f}")
    floor = figures["plain sandbox (floor)"]
    print(f"  added by the limits          {figures['mcpgw bounded render'] - floor:8.2f}  "
          f"({figures['mcpgw bounded render'] / floor:.2f}x the floor)")


def guard_figures(n: int, rounds: int) -> None:
    from gateway_server.backends.guard import Guard, classify

    guard = Guard(ttl=3600.0)
    guard.check("127.0.0.1", 5236, literal=True)

    def fresh() -> None:
        Guard(ttl=0.0).check("127.0.0.1", 5236, literal=True)

    cases = {
        "cached decision": lambda: guard.check("127.0.0.1", 5236, literal=True),
        "fresh decision (resolve)": fresh,
        "classify 64:ff9b::a00:1": lambda: classify("64:ff9b::a00:1"),
    }
    figures = _rounds(cases, n, rounds)
    print("\nOutbound guard, µs per decision")
    for name, value in figures.items():
        print(f"  {name:<28} {value:8.2f}")


def end_to_end(rev: str, quick: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="mcpgw-base-") as base:
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "gateway_server", "mcpgw_sdk"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        print(f"\nEnd to end: gateway_bench.py --calls-only with {rev} as 'baseline'", flush=True)
        cmd = [sys.executable, str(ROOT / "bench" / "gateway_bench.py"), "--calls-only", "--baseline", base]
        if quick:
            cmd.append("--quick")
        subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description="cost of the render limits and the outbound guard (prints only)")
    parser.add_argument("--n", type=int, default=20000, help="calls per round (default 20000)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--baseline-rev", metavar="REV",
                        help="also run gateway_bench.py --calls-only with the tree of REV as the baseline row")
    parser.add_argument("--quick", action="store_true", help="fewer calls; a quick end-to-end run")
    args = parser.parse_args()
    n = 2000 if args.quick else args.n
    render_figures(n, args.rounds)
    guard_figures(max(n // 10, 200), args.rounds)
    if args.baseline_rev:
        end_to_end(args.baseline_rev, args.quick)


if __name__ == "__main__":
    main()
