"""The official MCP conformance suite (``@modelcontextprotocol/conformance``) through a real gateway.

(a) Every server scenario against a prefix whose only backend is our fixture upstream
(``tests/fixtures/conformance_server.py`` over stdio, exposed without a tool prefix).
(b) The scenarios that need no fixture against a REST-only prefix (the demo document).
``make conformance`` runs this file alone.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures_gateway import FIXTURE, GatewayProc, demo_document, node_tool, run_backend, run_gateway, seed
from tests.helpers import Procs

pytestmark = pytest.mark.node

UPSTREAM_PREFIX = "/gateway/conformance"
REST_PREFIX = "/gateway/demo"
# The scenarios a REST-only server can pass (the suite's 0.1.16 release has no separate session-lifecycle one).
REST_SCENARIOS = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")


def conformance_document() -> dict:
    """A document serving the fixture upstream (stdio) at ``/conformance`` with no tool prefix."""
    return {"name": "conformance", "tenant": "default",
            "routers": [{"prefix": UPSTREAM_PREFIX, "server": "fixture"}],
            "mcpServers": [{"name": "fixture", "type": "stdio", "command": sys.executable, "args": [FIXTURE],
                            "toolPrefix": ""}]}


@pytest.fixture(scope="module")
def conformance_gateway(tmp_path_factory):
    """One gateway serving the fixture upstream and the demo REST document (module scope)."""
    with Procs(tmp_path_factory.mktemp("conformance")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, demo_document(run_backend(procs)), conformance_document())
        yield run_gateway(procs, url, env={"MCPGW_LOG_LEVEL": "INFO"}, revision=revision)


def run_suite(gw: GatewayProc, prefix: str, out: Path, scenarios=()) -> tuple[dict[str, list[dict]], str]:
    """Run ``conformance server`` against ``prefix``; return ``({scenario: checks}, output)``.

    The suite's DNS-rebinding scenario needs the ``localhost`` spelling of the URL.
    """
    tool = node_tool("conformance")
    node_tool("node")
    url = f"http://localhost:{gw.port}{prefix}/mcp"
    results: dict[str, list[dict]] = {}
    outputs = []
    # "all" includes the suite's pending scenarios (json-schema-2020-12, server-sse-polling).
    runs = [["--suite", "all"]] if not scenarios else [["--scenario", s] for s in scenarios]
    for extra in runs:
        done = subprocess.run([tool, "server", "--url", url, "--spec-version", "2025-11-25", "-o", str(out), *extra],
                              capture_output=True, text=True, timeout=240, env={**os.environ})
        outputs.append(done.stdout[-6000:] + done.stderr[-2000:])
        if done.returncode not in (0, 1):
            raise AssertionError(f"conformance exited {done.returncode}:\n{outputs[-1]}")
    for checks_file in sorted(out.rglob("checks.json")):
        # Directories are named "server-<scenario>-<timestamp>".
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", checks_file.parent.name).removeprefix("server-")
        results[scenario] = json.loads(checks_file.read_text())
    return results, "\n".join(outputs)


def failures(results: dict[str, list[dict]]) -> list[str]:
    """``scenario: check: message`` for every check that failed."""
    return [f"{scenario}: {check.get('id')}: {check.get('errorMessage') or check.get('description')}"
            for scenario, checks in sorted(results.items()) for check in checks
            if check.get("status") == "FAILURE"]


def test_every_scenario_passes_through_the_gateway_to_the_fixture_upstream(conformance_gateway, tmp_path):
    results, output = run_suite(conformance_gateway, UPSTREAM_PREFIX, tmp_path)
    listed = subprocess.run([node_tool("conformance"), "list"], capture_output=True, text=True, timeout=60).stdout
    server_part = listed.split("Client scenarios")[0]
    expected = {m.group(1) for m in re.finditer(r"^\s+- (\S+) \[([^\]]*)\]", server_part, re.M)
                if "2025-11-25" in m.group(2)}
    assert expected, listed
    missing = sorted(expected - set(results))
    assert not missing, f"scenarios without results: {missing}\n{output}"
    failed = failures(results)
    assert not failed, "failed conformance checks:\n" + "\n".join(failed) + "\n" + output[-3000:]
    assert re.search(r"Total: \d+ passed, 0 failed", output), output[-3000:]


def test_rest_only_prefix_passes_the_fixture_free_scenarios(conformance_gateway, tmp_path):
    results, output = run_suite(conformance_gateway, REST_PREFIX, tmp_path, scenarios=REST_SCENARIOS)
    assert set(results) >= set(REST_SCENARIOS), f"{sorted(results)}\n{output}"
    failed = failures(results)
    assert not failed, "failed conformance checks:\n" + "\n".join(failed) + "\n" + output[-3000:]
    passed = [c for checks in results.values() for c in checks if c.get("status") == "SUCCESS"]
    assert len(passed) >= len(REST_SCENARIOS)
