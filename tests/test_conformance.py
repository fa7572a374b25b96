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

from tests.fixtures_gateway import GatewayProc, _open, demo_document, node_tool
from tests.helpers import ROOT, Proc, free_port, python, wait_http

pytestmark = pytest.mark.node

FIXTURE = str(ROOT / "tests" / "fixtures" / "conformance_server.py")
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
    tmp = tmp_path_factory.mktemp("conformance")
    started: list[Proc] = []
    try:
        port = free_port()
        started.append(Proc([python(), "-m", "gateway_server.demo.backend", "--port", str(port)],
                            log=tmp / "backend.log"))
        backend = f"http://127.0.0.1:{port}"
        wait_http(f"{backend}/users")
        url = f"sqlite:///{tmp / 'gw.db'}"
        store = _open(url)
        store.save_document(demo_document(backend))
        store.save_document(conformance_document())
        revision = store.revision()
        store.close()
        gw_port = free_port()
        proc = Proc([python(), "-m", "gateway_server", "--db", url, "--port", str(gw_port),
                     "--reload-interval", "1"], env={"MCPGW_LOG_LEVEL": "INFO"}, log=tmp / "gateway.log")
        started.append(proc)
        gw = GatewayProc(base=f"http://127.0.0.1:{gw_port}", port=gw_port, proc=proc, db_url=url)
        try:
            wait_http(f"{gw.base}/readyz", status=200, timeout=30)
        except AssertionError:
            raise AssertionError(f"gateway did not become ready:\n{proc.output()[-3000:]}") from None
        gw.wait_revision(revision)
        yield gw
    finally:
        for proc in reversed(started):
            proc.stop()


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
