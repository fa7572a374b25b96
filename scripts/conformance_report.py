"""Print the per-scenario verdicts of both official MCP conformance suites; assert nothing.

* ``@modelcontextprotocol/conformance`` 0.1.16 (``conformance`` on PATH): ``--spec-version 2025-11-25
  --suite all``;
* 0.2.0-alpha.12 (``.tools/conformance-next/node_modules/.bin/conformance``): ``--requirements
  2026-07-28`` (the required server scenarios plus the not-scored ones).

Against, by default, the conformance fixture alone over Streamable HTTP; with ``--gateway``, a real
gateway whose ``/gateway/conformance`` prefix serves that fixture over stdio (what
``tests/test_conformance.py`` tests); with ``--url``, any MCP endpoint. ``make node-tools`` installs
both suites; ``make conformance-report ARGS=--gateway`` runs this with Node on PATH.

    python scripts/conformance_report.py [--gateway | --url URL] [--suite legacy|modern|both] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures_gateway import path_with_node, run_gateway, seed, start_fixture  # noqa: E402
from tests.helpers import Procs  # noqa: E402
from tests.test_conformance import (  # noqa: E402
    NEXT_PREFIX,
    UPSTREAM_PREFIX,
    conformance_document,
    localhost,
    modern_exemptions,
    run_legacy_suite,
    run_modern_suite,
)


def tool(prefix: str | None = None) -> str:
    """The ``conformance`` bin on PATH, or in ``.tools/<prefix>``; exit with a hint when absent."""
    path = os.environ["PATH"] if prefix is None else str(ROOT / ".tools" / prefix / "node_modules" / ".bin")
    found = shutil.which("conformance", path=path)
    if not found:
        sys.exit(f"conformance not found in {path}: run make node-tools")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--gateway", action="store_true", help="through a gateway serving the fixture over stdio")
    target.add_argument("--url", help="an MCP endpoint to test (use the localhost spelling for dns-rebinding)")
    parser.add_argument("--suite", choices=["legacy", "modern", "both"], default="both")
    parser.add_argument("--keep", type=Path, help="keep the suites' result directories here")
    args = parser.parse_args(argv)
    os.environ["PATH"] = path_with_node()
    legacy_tool = tool() if args.suite != "modern" else ""
    modern_tool = tool(NEXT_PREFIX) if args.suite != "legacy" else ""
    with ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="conformance-")))
        work.mkdir(parents=True, exist_ok=True)
        if args.url:
            url, where = args.url, args.url
        elif args.gateway:
            procs = stack.enter_context(Procs(work))
            db = f"sqlite:///{work / 'gw.db'}"
            gw = run_gateway(procs, db, env={"MCPGW_LOG_LEVEL": "INFO"}, revision=seed(db, conformance_document()))
            url, where = f"http://localhost:{gw.port}{UPSTREAM_PREFIX}/mcp", f"the gateway (logs in {work})"
        else:
            proc, fixture_url = start_fixture(work, "streamable-http")
            stack.callback(proc.stop)
            url, where = localhost(fixture_url), "the fixture alone (Streamable HTTP)"
        print(f"target: {url}, {where}\n")
        if legacy_tool:
            run = run_legacy_suite(legacy_tool, url, work / "legacy")
            print(run.table() + "\n")
        if modern_tool:
            run = run_modern_suite(modern_tool, url, work / "modern")
            print(run.table())
            print("\nrequired but not yet held against the gateway by tests/test_conformance.py:")
            print("\n".join(f"  {scenario}: {why}" for scenario, why in modern_exemptions(run.required).items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
