"""The official MCP conformance suite (``@modelcontextprotocol/conformance``) through a real gateway.

Two releases of the suite, side by side (``make node-tools`` installs both):

* 0.1.16 (``conformance`` on PATH) knows the legacy revisions: ``--spec-version 2025-11-25``.
  (a) Every server scenario against a prefix whose only backend is our fixture upstream
  (``tests/fixtures/conformance_server.py`` over stdio, exposed without a tool prefix).
  (b) The scenarios that need no fixture against a REST-only prefix (the demo document).
* 0.2.0-alpha.12 (``.tools/conformance-next/node_modules/.bin/conformance``) knows the stateless
  revision: ``--requirements 2026-07-28`` runs exactly the scenarios that revision requires (plus the
  ``not_scored`` ones, reported only). (c) The fixture alone over Streamable HTTP, which tells what the
  fixture is responsible for; (d) the same prefix as (a) through the gateway.

``make conformance`` runs this file alone; ``scripts/conformance_report.py`` (``make
conformance-report``) prints the same per-scenario verdict tables without asserting anything.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.fixtures_gateway import (
    GatewayProc,
    demo_document,
    fixture_document,
    node_tool,
    run_backend,
    run_gateway,
    seed,
)
from tests.helpers import Procs

pytestmark = pytest.mark.node

UPSTREAM_PREFIX = "/gateway/conformance"
REST_PREFIX = "/gateway/demo"
# The scenarios a REST-only server can pass (the suite's 0.1.16 release has no separate session-lifecycle one).
REST_SCENARIOS = ("server-initialize", "ping", "tools-list", "dns-rebinding-protection")

LEGACY_REVISION = "2025-11-25"
MODERN_REVISION = "2026-07-28"
NEXT_PREFIX = "conformance-next"  # the npm prefix (under .tools/) of the 0.2.0-alpha.12 release
MODERN_TIMEOUT_MS = 20000  # per scenario (the suite's default is 30 s)

# MRTR (SEP-2322, the ``input-required-result-*`` family) is held against the gateway: the fixture's
# ``input_required`` answers are relayed with the gateway's sealed ``requestState`` (docs/eras.md).
MRTR_FAMILY = "input-required-result-"
# Required 2026-07-28 scenarios that fail against the fixture alone (so for reasons outside the
# gateway), with the reason. None with 0.2.0-alpha.12 and mcp 2.3.0: the fixture alone passes all 37;
# ``test_the_fixture_alone_passes_the_2026_07_28_requirements`` keeps this list honest.
FIXTURE_GAPS: dict[str, str] = {}
# Required 2026-07-28 scenarios the gateway does not pass yet, with the reason and the work that closes them.
GATEWAY_GAPS: dict[str, str] = {}


def conformance_document() -> dict:
    """A document serving the fixture upstream (stdio, classified by the era probe) at ``/conformance``, no tool prefix."""
    return fixture_document("conformance", UPSTREAM_PREFIX, era="auto")


@pytest.fixture(scope="module")
def conformance_gateway(tmp_path_factory):
    """One gateway serving the fixture upstream and the demo REST document (module scope)."""
    with Procs(tmp_path_factory.mktemp("conformance")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, demo_document(run_backend(procs)), conformance_document())
        yield run_gateway(procs, url, env={"MCPGW_LOG_LEVEL": "INFO"}, revision=revision)


# --- running a suite and reading its results (shared with scripts/conformance_report.py) ---------------


@dataclass
class SuiteRun:
    """One ``conformance server`` run: the checks of every scenario and what the scenarios belong to."""

    release: str  # the suite's version, e.g. "0.1.16"
    revision: str  # the spec revision it was run for
    results: dict[str, list[dict]]  # scenario -> its checks.json
    output: str  # the tail of stdout/stderr
    revisions: dict[str, str] = field(default_factory=dict)  # scenario -> "2025-06-18,2025-11-25,…" (list)
    required: list[str] = field(default_factory=list)  # the scored server scenarios (empty: no requirement set)
    not_scored: dict[str, str] = field(default_factory=dict)  # scenario -> why it is reported but not scored
    required_label: str = "required"  # what ``required`` means for this release

    def verdicts(self) -> dict[str, str]:
        """``{scenario: verdict}`` for every scenario that produced results."""
        return {scenario: verdict(checks) for scenario, checks in self.results.items()}

    def scoring(self, scenario: str) -> str:
        """Whether ``scenario`` counts: ``required``, ``not scored (<reason>)`` or ``run``."""
        if scenario in self.not_scored:
            return f"not scored ({self.not_scored[scenario]})"
        if scenario in self.required:
            return self.required_label
        return "run"

    def table(self) -> str:
        """One line per scenario: verdict, scenario, its scoring and the revisions it belongs to."""
        order = [*self.required, *sorted(set(self.results) - set(self.required))]
        lines = [f"conformance {self.release}, {self.revision}: {len(self.results)} scenarios"]
        for scenario in order:
            checks = self.results.get(scenario)
            mark = verdict(checks) if checks is not None else "MISSING"
            counts = "" if checks is None else f"{sum(c.get('status') == 'SUCCESS' for c in checks)}/{len(checks)} ok"
            lines.append(f"  {mark:<7} {scenario:<48} {counts:<9} {self.scoring(scenario):<28} "
                         f"[{self.revisions.get(scenario, '?')}]")
        return "\n".join(lines)


def verdict(checks: list[dict]) -> str:
    """``FAIL`` if a check failed, ``WARN`` if one warned (passes), ``SKIP`` if every check skipped, else ``PASS``."""
    statuses = {check.get("status") for check in checks}
    if "FAILURE" in statuses:
        return "FAIL"
    if "WARNING" in statuses:
        return "WARN"
    if statuses and statuses <= {"SKIPPED", "INFO"}:
        return "SKIP"
    return "PASS"


def run_conformance(tool: str, url: str, out: Path, args: list[str], *, timeout: float = 240) -> tuple[dict, str]:
    """Run ``conformance server --url url -o out *args``; return ``({scenario: checks}, output)``.

    The suite exits 1 when a scored check fails; anything else than 0 or 1 is an error.
    """
    done = subprocess.run([tool, "server", "--url", url, "-o", str(out), *args],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ})
    output = done.stdout[-6000:] + done.stderr[-2000:]
    if done.returncode not in (0, 1):
        raise AssertionError(f"conformance exited {done.returncode}:\n{output}")
    return read_results(out), output


def read_results(out: Path) -> dict[str, list[dict]]:
    """``{scenario: checks}`` from the ``server-<scenario>-<timestamp>/checks.json`` files under ``out``."""
    results: dict[str, list[dict]] = {}
    for checks_file in sorted(out.rglob("checks.json")):
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", checks_file.parent.name).removeprefix("server-")
        results[scenario] = json.loads(checks_file.read_text())
    return results


def scenario_revisions(tool: str) -> dict[str, str]:
    """``{server scenario: "rev,rev,…"}`` from ``conformance list`` (the bracket after each name)."""
    listed = subprocess.run([tool, "list"], capture_output=True, text=True, timeout=60).stdout
    server_part = listed.split("Client scenarios")[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s+- (\S+) \[([^\]]*)\]", server_part, re.M)}


def requirement_set(tool: str, revision: str) -> tuple[list[str], dict[str, str]]:
    """The server leg of the package's frozen ``requirements/<revision>.yaml``: ``(required, {not scored: why})``."""
    package = Path(tool).resolve().parent.parent  # .bin/conformance -> <package>/dist/index.js
    doc = yaml.safe_load((package / "requirements" / f"{revision}.yaml").read_text())
    not_scored = {entry["scenario"]: entry.get("reason", "not scored") for entry in doc.get("not_scored") or []
                  if entry.get("leg") == "server"}
    return list(doc.get("server") or []), not_scored


def suite_version(tool: str) -> str:
    """``conformance --version``."""
    return subprocess.run([tool, "--version"], capture_output=True, text=True, timeout=60).stdout.strip()


def run_legacy_suite(tool: str, url: str, out: Path, scenarios=()) -> SuiteRun:
    """0.1.16 at ``--spec-version 2025-11-25``: ``--suite all`` (pending scenarios too) or the given scenarios."""
    outputs = []
    runs = [["--suite", "all"]] if not scenarios else [["--scenario", s] for s in scenarios]
    for extra in runs:
        _, output = run_conformance(tool, url, out, ["--spec-version", LEGACY_REVISION, *extra])
        outputs.append(output)
    results = read_results(out)
    revisions = scenario_revisions(tool)
    required = [s for s, revs in revisions.items() if LEGACY_REVISION in revs.split(",")]
    # 0.1.16 has no requirement sets: "required" is every scenario listed for 2025-11-25 (pending ones too).
    return SuiteRun(suite_version(tool), LEGACY_REVISION, results, "\n".join(outputs), revisions, required,
                    required_label=f"listed for {LEGACY_REVISION}")


def run_modern_suite(tool: str, url: str, out: Path) -> SuiteRun:
    """0.2.0-alpha.12 at ``--requirements 2026-07-28``: the required scenarios plus the not-scored ones."""
    args = ["--requirements", MODERN_REVISION, "--timeout", str(MODERN_TIMEOUT_MS)]
    results, output = run_conformance(tool, url, out, args, timeout=900)
    required, not_scored = requirement_set(tool, MODERN_REVISION)
    return SuiteRun(suite_version(tool), MODERN_REVISION, results, output, scenario_revisions(tool), required,
                    not_scored)


def failures(results: dict[str, list[dict]], scenarios=None) -> list[str]:
    """``scenario: check: message`` for every check that failed (of ``scenarios`` when given)."""
    return [f"{scenario}: {check.get('id')}: {check.get('errorMessage') or check.get('description')}"
            for scenario, checks in sorted(results.items()) for check in checks
            if check.get("status") == "FAILURE" and (scenarios is None or scenario in scenarios)]


def modern_exemptions(required: list[str]) -> dict[str, str]:
    """The required 2026-07-28 scenarios the gateway test does not hold against it, with the reason."""
    exempt = {s: f"not served by the gateway yet: {why}" for s, why in GATEWAY_GAPS.items() if s in required}
    return {**exempt, **{s: f"fails against the fixture alone: {why}" for s, why in FIXTURE_GAPS.items()}}


def localhost(url: str) -> str:
    """``url`` with the ``localhost`` spelling the suite's DNS-rebinding scenario needs."""
    return url.replace("://127.0.0.1:", "://localhost:")


def run_suite(gw: GatewayProc, prefix: str, out: Path, scenarios=()) -> tuple[dict[str, list[dict]], str]:
    """The 0.1.16 suite against ``prefix`` of ``gw``; return ``({scenario: checks}, output)``."""
    node_tool("node")
    run = run_legacy_suite(node_tool("conformance"), f"http://localhost:{gw.port}{prefix}/mcp", out, scenarios)
    return run.results, run.output


# --- 0.1.16, --spec-version 2025-11-25 -------------------------------------------------------------------


def test_every_scenario_passes_through_the_gateway_to_the_fixture_upstream(conformance_gateway, tmp_path):
    node_tool("node")
    url = f"http://localhost:{conformance_gateway.port}{UPSTREAM_PREFIX}/mcp"
    run = run_legacy_suite(node_tool("conformance"), url, tmp_path)
    print(run.table())
    expected = set(run.required)
    assert expected, run.revisions
    missing = sorted(expected - set(run.results))
    assert not missing, f"scenarios without results: {missing}\n{run.output}"
    failed = failures(run.results)
    assert not failed, "failed conformance checks:\n" + "\n".join(failed) + "\n" + run.output[-3000:]
    assert re.search(r"Total: \d+ passed, 0 failed", run.output), run.output[-3000:]


def test_rest_only_prefix_passes_the_fixture_free_scenarios(conformance_gateway, tmp_path):
    results, output = run_suite(conformance_gateway, REST_PREFIX, tmp_path, scenarios=REST_SCENARIOS)
    assert set(results) >= set(REST_SCENARIOS), f"{sorted(results)}\n{output}"
    failed = failures(results)
    assert not failed, "failed conformance checks:\n" + "\n".join(failed) + "\n" + output[-3000:]
    passed = [c for checks in results.values() for c in checks if c.get("status") == "SUCCESS"]
    assert len(passed) >= len(REST_SCENARIOS)


# --- 0.2.0-alpha.12, --requirements 2026-07-28 -----------------------------------------------------------


def test_the_fixture_alone_passes_the_2026_07_28_requirements(http_url, tmp_path):
    """The fixture over Streamable HTTP, no gateway: what fails here is the fixture's (FIXTURE_GAPS)."""
    node_tool("node")
    run = run_modern_suite(node_tool("conformance", prefix=NEXT_PREFIX), localhost(http_url), tmp_path)
    print(run.table())
    missing = sorted(set(run.required) - set(run.results))
    assert not missing, f"scenarios without results: {missing}\n{run.output}"
    failing = {s for s in run.required if verdict(run.results[s]) == "FAIL"}
    assert failing == set(FIXTURE_GAPS), (
        "the required scenarios failing against the fixture alone differ from FIXTURE_GAPS:\n"
        + "\n".join(failures(run.results, failing ^ set(FIXTURE_GAPS))) + "\n" + run.table())


def test_2026_07_28_requirements_pass_through_the_gateway_to_the_fixture_upstream(conformance_gateway, tmp_path):
    """Every required 2026-07-28 scenario through the gateway (MRTR included), except GATEWAY_GAPS and FIXTURE_GAPS."""
    node_tool("node")
    url = f"http://localhost:{conformance_gateway.port}{UPSTREAM_PREFIX}/mcp"
    run = run_modern_suite(node_tool("conformance", prefix=NEXT_PREFIX), url, tmp_path)
    table = run.table()
    print(table)
    exempt = modern_exemptions(run.required)
    print("not held against the gateway:\n" + "\n".join(f"  {s}: {why}" for s, why in exempt.items()))
    print("\n".join(failures(run.results, [s for s in exempt if s in run.results])))
    # server-stateless is exempt for its capability checks only: its listen, logging and error checks hold.
    stateless = failures(run.results, ["server-stateless"])
    assert all("capability" in line for line in stateless), "\n".join(stateless)
    assert run.required, "the 2026-07-28 requirement set lists no server scenarios"
    missing = sorted(set(run.required) - set(run.results))
    held = [s for s in run.required if s not in exempt and s in run.results]
    failing = [s for s in held if verdict(run.results[s]) == "FAIL"]
    assert [s for s in held if s.startswith(MRTR_FAMILY)], "no input-required-result-* scenario was held"
    assert not missing and not failing, (
        f"scenarios without results: {missing}\nfailing required scenarios: {failing}\n"
        + "\n".join(failures(run.results, failing)) + "\n" + table + "\n" + run.output[-3000:])
