"""Regressions found by a QA pass that followed the README on a fresh clone (one test per finding)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mcpgw_sdk import unla
from mcpgw_sdk.errors import ConfigError, Forbidden
from mcpgw_sdk.sqlstore import SqlStore
from tests.fixtures_store import make_document
from tests.helpers import free_port, wait_http

DATA = Path(__file__).resolve().parent / "data"
MCPGW = str(Path(sys.executable).parent / "mcpgw")


def test_passwords_shorter_than_8_characters_are_refused(sqlite_store):
    with pytest.raises(ConfigError, match="password: must be at least 8 characters"):
        sqlite_store.create_user("ann", "short-7")
    sqlite_store.create_user("ann", "eight-ch")
    with pytest.raises(ConfigError, match="password: must be at least 8 characters"):
        sqlite_store.set_password("ann", "1234567")
    assert sqlite_store.authenticate("ann", "eight-ch").name == "ann"


def test_a_key_needs_membership_of_its_tenant_unless_admin(sqlite_store):
    sqlite_store.create_tenant("acme")
    sqlite_store.create_user("bob", "bob-pass-1")
    sqlite_store.create_user("root", "root-pass-1", role="admin")
    with pytest.raises(Forbidden, match="tenant 'acme'"):
        sqlite_store.create_key("bob", "acme")
    assert sqlite_store.list_keys() == []
    assert sqlite_store.create_key("root", "acme")[0].tenant == "acme"
    sqlite_store.update_user("bob", tenants=["acme"])
    assert sqlite_store.create_key("bob", "acme")[0].user == "bob"


def test_the_auto_created_default_tenant_is_the_catch_all(sqlite_store):
    sqlite_store.save_document(make_document("demo-users", prefix="/gateway/demo"))
    assert sqlite_store.get_tenant("default").prefix == "/"
    sqlite_store.save_document(unla.from_unla(yaml.safe_load((DATA / "unla-mock-user-svc.yaml").read_text())))  # at /default/..., refused when default's prefix was /gateway
    sqlite_store.save_document(make_document("users", tenant="default"))
    sqlite_store.save_document(make_document("crm", tenant="acme", prefix="/acme-gw/crm"))
    assert sqlite_store.get_tenant("acme").prefix == "/acme-gw"  # other tenants keep the first-segment rule


@pytest.mark.parametrize("command", ["serve", "api"])
def test_a_port_in_use_is_one_clear_line_not_a_traceback(command, tmp_path):
    db = f"sqlite:///{tmp_path / 'p.db'}"
    store = SqlStore(db)
    store.upgrade()
    store.close()
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


def _mixed_document() -> dict:
    """A REST router and an upstream whose env reads a variable MCPGW_TEMPLATE_ENV does not allow."""
    return {"name": "mix", "tenant": "default",
            "routers": [{"prefix": "/default/rest", "server": "rest"}, {"prefix": "/default/up", "server": "up"}],
            "servers": [{"name": "rest", "allowedTools": ["ping"]}],
            "tools": [{"name": "ping", "description": "ping", "method": "GET", "endpoint": "http://127.0.0.1:9/x"}],
            "mcpServers": [{"name": "up", "type": "stdio", "command": sys.executable, "policy": "onDemand",
                            "env": {"TOKEN": '{{ env("QA_NOT_ALLOWED") }}'}}]}


def test_an_upstream_with_a_forbidden_env_name_fails_alone(monkeypatch):
    from datetime import datetime, timezone

    from gateway_server.backends import CallContext
    from gateway_server.snapshot import build_snapshot
    from mcpgw_sdk import records as r

    monkeypatch.delenv("MCPGW_TEMPLATE_ENV", raising=False)
    doc = r.Document(tenant="default", name="mix", content=_mixed_document(), version=1,
                     updated_at=datetime.now(timezone.utc), updated_by=None, deleted=False)
    snap = build_snapshot(r.ConfigSet(revision=1, documents=(doc,), keys=(),
                                      tenants=(r.Tenant(id=1, name="default", prefix="/", description=""),)))
    try:
        assert snap.errors == {}
        assert {"/default/rest", "/default/up"} <= set(snap.routes)
        upstream = next(b for b in snap.backends.values() if getattr(b, "name", "") == "up")
        status = upstream.status()
        assert status["state"] == "failed"
        assert "env('QA_NOT_ALLOWED') is not allowed" in status["last_error"]
        result = upstream.call_tool("anything", {}, CallContext())
        assert result["isError"] and "QA_NOT_ALLOWED" in result["content"][0]["text"]
    finally:
        for backend in snap.backends.values():
            backend.close()


def test_check_warns_about_env_names_not_allowed(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from mcpgw_sdk.cli import cli

    monkeypatch.delenv("MCPGW_TEMPLATE_ENV", raising=False)
    db = f"sqlite:///{tmp_path / 'c.db'}"
    store = SqlStore(db)
    store.upgrade()
    store.save_document(_mixed_document())
    store.close()
    result = CliRunner().invoke(cli, ["check", "--db", db])
    assert result.exit_code == 0, result.output
    assert ("Warning: default/mix: mcpServers[0].env.TOKEN: env('QA_NOT_ALLOWED') is not allowed"
            in result.stderr)
    assert "All 1 document(s) are valid." in result.stdout
    monkeypatch.setenv("MCPGW_TEMPLATE_ENV", "QA_NOT_ALLOWED")
    assert "Warning" not in CliRunner().invoke(cli, ["check", "--db", db]).stderr


def test_export_unla_skips_only_the_untranslatable_document(tmp_path):
    from click.testing import CliRunner

    from mcpgw_sdk.cli import cli

    db = f"sqlite:///{tmp_path / 'e.db'}"
    store = SqlStore(db)
    store.upgrade()
    store.save_document(make_document("good"))
    store.save_document(make_document("bad", endpoint="http://h/{{ args.id | upper }}"))
    store.close()
    result = CliRunner().invoke(cli, ["export", "--format", "unla", "--db", db])
    assert result.exit_code == 0, result.output
    assert [d["name"] for d in yaml.safe_load_all(result.stdout)] == ["good"]
    assert "Warning: skipped default/bad: tools[0].endpoint:" in result.stderr
    assert "'upper' has no Unla spelling" in result.stderr
    alone = CliRunner().invoke(cli, ["export", "--format", "unla", "--name", "bad", "--db", db])
    assert alone.exit_code == 1 and "nothing exported" in alone.stderr


def test_a_yaml_directory_translates_unla_files_and_check_prints_each_problem_once(tmp_path):
    from mcpgw_sdk.yamlstore import YamlStore

    (tmp_path / "unla.yaml").write_text((DATA / "unla-mock-user-svc.yaml").read_text())
    store = YamlStore(f"yaml:///{tmp_path}")
    try:
        store.load_config()
        assert store.errors == []
        doc = store.get_document("default", "mock-user-svc")
        assert "{{ env(" in doc.content["servers"][0]["config"]["Authorization"]
    finally:
        store.close()
    (tmp_path / "broken.yaml").write_text("name: broken\nrouters: [{prefix: /default/b, server: nope}]\n")
    result = subprocess.run([MCPGW, "check", "--db", f"yaml:///{tmp_path}"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    combined = result.stdout + result.stderr
    assert combined.count("'nope' is not a server") == 1
    assert "template does not parse" not in combined


def test_the_demo_upload_tool_describes_the_shape_its_schema_accepts():
    from gateway_server.demo.run import demo_document

    tool = next(t for t in demo_document("http://127.0.0.1:1")["tools"] if t["name"] == "upload_avatar")
    file_arg = next(a for a in tool["args"] if a["name"] == "file")
    assert file_arg["type"] == "object"
    assert "base64 text" not in file_arg["description"]  # a string is refused by the object schema


def test_console_hides_deploy_and_draws_latency_of_a_single_bucket():
    from datetime import datetime, timedelta, timezone

    from console import usage
    from console.commands import streamlit_command
    from mcpgw_sdk.records import AuditRecord

    args = streamlit_command(host="127.0.0.1", port=8501)
    assert args[args.index("--client.toolbarMode") + 1] == "minimal"
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)

    def record(ts):
        return AuditRecord(ts=ts, tenant="t", prefix="/t/a", server="a", tool="x", outcome="ok", latency_ms=5.0)

    one = usage.over_time(usage.frame([record(now), record(now)]), "1min")
    assert len(one) == 1 and not usage.latency_as_line(one)  # one point: the page draws bars, not a blank line
    two = usage.over_time(usage.frame([record(now), record(now + timedelta(minutes=1))]), "1min")
    assert usage.latency_as_line(two)
    assert not usage.latency_as_line(usage.over_time(usage.frame([]), "1min"))


def test_openapi_dry_run_warns_when_its_prefix_would_be_refused(tmp_path):
    from click.testing import CliRunner

    from mcpgw_sdk.cli import cli

    db = f"sqlite:///{tmp_path / 'o.db'}"
    store = SqlStore(db)
    store.upgrade()
    store.create_tenant("acme", prefix="/acme")
    store.close()
    spec = str(DATA / "users-openapi30.json")
    fits = CliRunner().invoke(cli, ["openapi", "import", spec, "--name", "crm", "--tenant", "acme", "--dry-run",
                                    "--db", db])
    assert fits.exit_code == 0 and "Warning" not in fits.stderr and "nothing written" in fits.stderr
    refused = CliRunner().invoke(cli, ["openapi", "import", spec, "--name", "crm", "--tenant", "acme",
                                       "--prefix", "/gateway/crm", "--dry-run", "--db", db])
    assert refused.exit_code == 0
    assert "Warning: acme/crm: routers[0].prefix: '/gateway/crm' is outside tenant 'acme'" in refused.stderr
    assert "would be refused" in refused.stderr
    real = CliRunner().invoke(cli, ["openapi", "import", spec, "--name", "crm", "--tenant", "acme",
                                    "--prefix", "/gateway/crm", "--db", db])
    assert real.exit_code == 1  # the warning told the truth
