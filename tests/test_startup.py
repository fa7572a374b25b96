"""What the gateway and the API say when they start: the URLs served, a warning when the setup loses sessions,
one clear line when the port is taken."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_server.commands import shared_sessions_warning
from tests.fixtures_gateway import DEMO_PREFIX, demo_document, gunicorn_path, run_gateway, seed
from tests.helpers import free_port, wait_for, wait_http

MCPGW = str(Path(sys.executable).parent / "mcpgw")


def _output(gw, needle: str) -> str:
    return wait_for(lambda: gw.proc.output() if needle in gw.proc.output() else None, timeout=10,
                    what=f"{needle!r} in the gateway's output")


def test_serve_names_its_urls_in_plain_words(procs, tmp_path):
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed(db, demo_document("http://127.0.0.1:9"))
    gw = run_gateway(procs, db, command=[MCPGW, "serve", "--port", "{port}"], env={"MCPGW_LOG_FORMAT": "text"})
    out = _output(gw, "MCP endpoints")
    assert f"mcpgw gateway serving {gw.base} — config revision" in out
    assert f"  {gw.base}{DEMO_PREFIX}/mcp\n" in out
    assert f"{gw.base}/healthz" in out
    assert '{"ts"' not in out  # text, not JSON lines


def test_serve_logs_its_urls_as_one_json_record(procs, tmp_path):
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed(db, demo_document("http://127.0.0.1:9"))
    gw = run_gateway(procs, db, command=[MCPGW, "serve", "--port", "{port}"], env={"MCPGW_LOG_FORMAT": "json"})
    out = _output(gw, "gateway listening on")
    record = next(json.loads(line) for line in out.splitlines() if "gateway listening on" in line)
    assert record["url"] == gw.base
    assert record["endpoints"] == [f"{gw.base}{DEMO_PREFIX}/mcp"]
    assert "MCP endpoints (" not in out  # no plain lines in production logs


def test_serve_with_no_documents_says_what_to_do(procs, tmp_path):
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed(db)
    gw = run_gateway(procs, db, command=[MCPGW, "serve", "--port", "{port}"], env={"MCPGW_LOG_FORMAT": "text"})
    assert "No MCP endpoints yet: add a config document (`mcpgw import FILE`" in _output(gw, "No MCP endpoints")


def test_several_gunicorn_workers_without_redis_warn(procs, tmp_path):
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed(db, demo_document("http://127.0.0.1:9"))
    gunicorn = gunicorn_path()
    two = run_gateway(procs, db, name="two", env={"MCPGW_LOG_FORMAT": "json"},
                      command=[gunicorn, "-k", "gevent", "-w", "2", "-b", "127.0.0.1:{port}", "gateway_server.wsgi:app"])
    out = _output(two, "gunicorn workers keep legacy MCP sessions")
    warning = next(json.loads(line) for line in out.splitlines() if "gunicorn workers keep" in line)
    assert warning["level"] == "warning" and warning["workers"] == 2 and "MCPGW_REDIS_URL" in warning["msg"]
    # WEB_CONCURRENCY is how platforms set gunicorn's worker count without a flag: read the same way.
    one = run_gateway(procs, db, name="one", env={"MCPGW_LOG_FORMAT": "json", "WEB_CONCURRENCY": "1"},
                      command=[gunicorn, "-k", "gevent", "-b", "127.0.0.1:{port}", "gateway_server.wsgi:app"])
    _output(one, "serving config revision")
    assert "gunicorn workers keep" not in one.proc.output()


def test_the_warning_names_the_fix():
    assert shared_sessions_warning(None, "") is None  # not under gunicorn
    assert shared_sessions_warning(1, "") is None
    assert shared_sessions_warning(4, "redis://redis:6379/0") is None
    text = shared_sessions_warning(4, "")
    assert text.startswith("4 gunicorn workers") and "MCPGW_REDIS_URL" in text and "docs/scale-out.md" in text


@pytest.mark.parametrize("command", ["serve", "api"])
def test_a_port_in_use_is_one_clear_line_not_a_traceback(command, tmp_path):
    db = f"sqlite:///{tmp_path / 'p.db'}"
    seed(db)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        done = subprocess.run([MCPGW, command, "--db", db, "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"Error: cannot listen on 127.0.0.1:{port}: address already in use" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_serve_and_api_print_no_monkey_patch_warning(procs, tmp_path):
    db = f"sqlite:///{tmp_path / 'w.db'}"
    api_port, gw_port = free_port(), free_port()
    api = procs.start([MCPGW, "api", "--db", db, "--port", str(api_port), "--upgrade"], name="api")
    wait_http(f"http://127.0.0.1:{api_port}/api/v1/openapi.json", status=200, timeout=60)
    gateway = procs.start([MCPGW, "serve", "--db", db, "--port", str(gw_port)], name="serve")
    wait_http(f"http://127.0.0.1:{gw_port}/healthz", status=200, timeout=60)
    procs.stop()
    for proc in (api, gateway):
        out = proc.log_path.read_text(errors="replace")
        assert "listening on" in out or "mcpgw api:" in out  # it printed its start-up line
        assert "MonkeyPatchWarning" not in out
