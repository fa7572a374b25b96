"""stdio upstreams are an operator's privilege: who may save them, what the child inherits, which user runs it."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import sys

import pytest
import yaml

from console import editing
from mcpgw_sdk.client import McpClient
from mcpgw_sdk.errors import ConfigError, Forbidden, McpConnectionError, NotFound
from mcpgw_sdk.mcp_transports import STDIO_PATH
from tests.fixtures_gateway import run_gateway, seed
from tests.helpers import ROOT
from tests.test_api import Api, error_of, start_api
from tests.test_api import doc as rest_doc
from tests.test_api import seed as seed_api

ENVIRON_SERVER = str(ROOT / "tests" / "fixtures" / "environ_server.py")
FIELD = "mcpServers[0].command"


def stdio_doc(name: str, tenant: str = "acme", *, command: str = "/bin/sh", args=("-c", "id"),
              env: dict | None = None, prefix: str | None = None) -> dict:
    """A document whose only backend is a stdio upstream running ``command``."""
    server = {"name": name, "type": "stdio", "command": command, "args": list(args)}
    if env:
        server["env"] = env
    return {"name": name, "tenant": tenant, "routers": [{"prefix": prefix or f"/{tenant}/{name}", "server": name}],
            "mcpServers": [server]}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An API process on a seeded SQLite file: admin, alice (member of acme), bob (member of globex)."""
    tmp = tmp_path_factory.mktemp("stdio-api")
    url = f"sqlite:///{tmp / 'api.db'}"
    store = seed_api(url)
    base, proc = start_api(url, tmp)
    yield Api(base, store, proc)
    proc.stop()
    store.close()


# -- who may save a stdio upstream ------------------------------------------------------------------


def test_a_member_cannot_save_a_stdio_upstream_through_any_api_write(api):
    alice = api.login("alice")
    revision = api.store.revision()
    shell = stdio_doc("shell")

    resp = alice.post("documents", json=shell)
    assert resp.status_code == 403, resp.text
    message = error_of(resp)["message"]
    assert "acme/shell" in message and FIELD in message and "/bin/sh" in message

    resp = alice.put("documents/acme/shell", data=yaml.safe_dump(shell), headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 403 and FIELD in error_of(resp)["message"], resp.text

    both = yaml.safe_dump_all([rest_doc("harmless"), stdio_doc("shell2")])
    resp = alice.post("import", data=both, headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 403 and "acme/shell2" in error_of(resp)["message"], resp.text

    resp = alice.post("documents/validate", json=shell)
    assert resp.status_code == 200 and not resp.json()["valid"]
    assert any(FIELD in e for e in resp.json()["errors"])

    assert api.store.revision() == revision  # nothing was written, not even the harmless document
    for name in ("shell", "shell2", "harmless"):
        with pytest.raises(NotFound):
            api.store.get_document("acme", name)


def test_a_member_cannot_roll_back_to_or_edit_an_admins_stdio_version(api):
    admin, alice = api.login("admin"), api.login("alice")
    resp = admin.post("documents", json=stdio_doc("tools", args=["-c", "exit 0"]))
    assert resp.status_code == 201, resp.text  # admins may
    assert admin.put("documents/acme/tools", json=rest_doc("tools"), headers={"If-Match": '"1"'}).status_code == 200

    resp = alice.post("documents/acme/tools/rollback", json={"version": 1})
    assert resp.status_code == 403 and "acme/tools" in error_of(resp)["message"] and FIELD in error_of(resp)["message"]
    assert api.store.get_document("acme", "tools").version == 2

    # A member may not edit a document that still holds the admin's stdio upstream either.
    assert admin.post("documents/acme/tools/rollback", json={"version": 1}).status_code == 200
    changed = stdio_doc("tools", args=["-c", "exit 0"])
    changed["routers"][0]["cors"] = {"allowOrigins": ["*"]}
    resp = alice.put("documents/acme/tools", json=changed)
    assert resp.status_code == 403, resp.text
    assert api.store.get_document("acme", "tools").version == 3
    # Deleting one (stopping a process) stays a member's right.
    assert alice.delete("documents/acme/tools").status_code == 204


def test_the_cli_and_sdk_and_allow_listed_commands(sqlite_store, monkeypatch):
    store = sqlite_store
    store.create_tenant("acme")
    member = store.create_user("carol", "carol-pass-1", tenants=["acme"])
    store.save_document(stdio_doc("cli"))  # no acting user: the CLI or SDK on the host

    monkeypatch.setenv("MCPGW_STDIO_COMMANDS", "/opt/mcp/files, uvx")
    store.save_document(stdio_doc("files", command="/opt/mcp/files"), actor=member)
    store.save_document(stdio_doc("uvx", command="uvx", env={"API_TOKEN": "t"}), actor=member)
    for command in ("/usr/bin/uvx", "files", "/opt/mcp//files", "/opt/mcp/files/"):
        with pytest.raises(Forbidden, match=r"acme/x: mcpServers\[0\]\.command"):
            store.save_document(stdio_doc("x", command=command), actor=member)
    with pytest.raises(Forbidden, match=r"mcpServers\[0\]\.env\.LD_PRELOAD"):
        store.save_document(stdio_doc("x", command="uvx", env={"LD_PRELOAD": "/tmp/x.so"}), actor=member)
    with pytest.raises(Forbidden, match=r"mcpServers\[0\]\.env\.PATH"):
        store.save_document(stdio_doc("x", command="uvx", env={"PATH": "/tmp"}), actor=member)
    with pytest.raises(Forbidden):
        store.import_documents([stdio_doc("y", command="/bin/sh")], actor=member)
    with pytest.raises(NotFound):
        store.get_document("acme", "x")

    monkeypatch.setenv("MCPGW_STDIO_COMMANDS", "bin/sh")
    with pytest.raises(ConfigError, match="MCPGW_STDIO_COMMANDS"):
        store.save_document(stdio_doc("x", command="bin/sh"), actor=member)


def test_the_console_refuses_a_members_stdio_upstream_at_the_field(sqlite_store):
    store = sqlite_store
    store.create_tenant("acme")
    member = store.create_user("carol", "carol-pass-1", tenants=["acme"])
    admin = store.create_user("root", "root-pass-12", role="admin")

    outcome = editing.save(store, stdio_doc("shell"), user=member, base_version=None)
    assert not outcome.ok and [e.path for e in outcome.errors] == [FIELD], outcome.errors
    with pytest.raises(NotFound):
        store.get_document("acme", "shell")
    assert editing.save(store, stdio_doc("shell"), user=admin, base_version=None).ok
    with pytest.raises(Forbidden):  # the console's Versions page restores through the same check
        store.rollback("acme", "shell", 1, author=member.name, actor=member)


# -- what the child process gets --------------------------------------------------------------------


def _environ_of(client: McpClient) -> dict:
    tool = next(t["name"] for t in client.list_tools() if t["name"].endswith("environ"))
    return json.loads(client.call_tool(tool, {})["content"][0]["text"])


def test_a_stdio_upstream_gets_none_of_the_gateways_environment(procs):
    url = f"sqlite:///{procs.log_dir / 'gw.db'}"
    document = stdio_doc("probe", tenant="default", command=sys.executable, args=[ENVIRON_SERVER],
                         env={"GREETING": "hello"}, prefix="/probe")
    gw = run_gateway(procs, url, reload_interval=0.3, revision=seed(url, document),
                     env={"MCPGW_TEST_SECRET": "s3cret-value", "MCPGW_JWT_SECRET": "jwt-s3cret"})
    with McpClient(gw.mcp_url("/probe"), timeout=20) as client:
        report = _environ_of(client)
    environ = report["environ"]
    assert not any("s3cret" in value for value in environ.values()), environ
    assert not any(name.startswith("MCPGW_") for name in environ), environ
    assert set(environ) - {"LC_CTYPE"} == {"PATH", "HOME", "LANG", "GREETING"}, environ
    assert environ["PATH"] == STDIO_PATH and environ["GREETING"] == "hello"


def test_a_bare_command_is_looked_up_in_the_documents_path_which_only_an_admin_may_set(sqlite_store, tmp_path,
                                                                                       monkeypatch):
    planted = tmp_path / "mcpgw-planted-server"  # stands for uvx/npx under ~/.local/bin or nvm
    planted.write_text(f"#!/bin/sh\nexec {sys.executable} {ENVIRON_SERVER}\n")
    planted.chmod(0o755)
    store = sqlite_store
    store.create_tenant("acme")
    member = store.create_user("carol", "carol-pass-1", tenants=["acme"])
    admin = store.create_user("root", "root-pass-12", role="admin")
    own_path = {"PATH": f"{tmp_path}:{STDIO_PATH}"}
    monkeypatch.setenv("MCPGW_STDIO_COMMANDS", planted.name)
    with pytest.raises(Forbidden, match=r"mcpServers\[0\]\.env\.PATH"):  # a member cannot point it elsewhere
        store.save_document(stdio_doc("m", command=planted.name, args=(), env=own_path), actor=member)
    saved = store.save_document(stdio_doc("a", command=planted.name, args=(), env=own_path), actor=admin)
    server = saved.content["mcpServers"][0]

    with McpClient(server["command"], transport="stdio", args=server["args"], env=server["env"],
                   timeout=20) as client:
        environ = _environ_of(client)["environ"]
    assert environ["PATH"] == own_path["PATH"]  # found in, and started with, the document's PATH
    with pytest.raises(McpConnectionError, match="not found in PATH /usr/local/bin"):  # without it: not found
        McpClient(planted.name, transport="stdio", timeout=5).connect()


def test_stdio_user_runs_the_child_as_that_user(monkeypatch):
    if os.geteuid() != 0:
        pytest.skip("running a child as another user needs root")
    nobody = pwd.getpwnam("nobody")
    # This venv's interpreter may sit where nobody cannot read; the fixture needs only the standard library.
    system_python = shutil.which("python3", path=STDIO_PATH)
    if system_python is None:
        pytest.skip(f"no python3 in {STDIO_PATH}")
    monkeypatch.setenv("MCPGW_STDIO_USER", "nobody")
    with McpClient(system_python, transport="stdio", args=[ENVIRON_SERVER], timeout=20) as client:
        report = _environ_of(client)
    assert (report["uid"], report["gid"]) == (nobody.pw_uid, nobody.pw_gid)
    assert set(report["groups"]) <= {nobody.pw_gid}  # no supplementary groups of ours
    assert report["environ"]["HOME"] == nobody.pw_dir
    assert report["parent_environ_readable"] is False  # /proc/<parent>/environ: the secrets stay out of reach


def test_an_unknown_stdio_user_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("MCPGW_STDIO_USER", "mcpgw-no-such-user")
    client = McpClient(sys.executable, transport="stdio", args=[ENVIRON_SERVER], timeout=5)
    with pytest.raises(McpConnectionError, match="MCPGW_STDIO_USER.*'mcpgw-no-such-user'"):
        client.connect()
