"""The SDK's commands, run with click's CliRunner against real SQLite databases."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mcpgw_sdk import AuthError, open_store
from mcpgw_sdk.cli import cli

USERS = """\
name: users
tenant: default
routers:
  - server: users
    prefix: /default/users
servers:
  - name: users
    config: {base: "http://127.0.0.1:5236"}
    allowedTools: [get_user]
tools:
  - name: get_user
    description: Get a user by email
    method: GET
    endpoint: "{{ config.base }}/users/{{ args.email }}"
    args:
      - {name: email, position: path, required: true, type: string}
"""

ORDERS = USERS.replace("users", "orders").replace("get_user", "get_order").replace("email", "id")

BROKEN = USERS.replace("name: users\n", "name: broken\n", 1).replace("/default/users", "/default/broken") \
    .replace("position: path", "position: bdy")

SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "servers": [{"url": "http://127.0.0.1:5236"}],
    "paths": {
        "/pets/{id}": {"get": {"operationId": "getPet", "summary": "Get a pet",
                               "parameters": [{"name": "id", "in": "path", "required": True,
                                               "schema": {"type": "integer"}}],
                               "responses": {"200": {"description": "ok"}}}},
        "/pets": {"get": {"operationId": "listPets", "summary": "List pets",
                          "responses": {"200": {"description": "ok"}}}},
    },
}


def run(db, *args, input=None, env=None, ok=True):
    """Invoke ``mcpgw ARGS --db DB``; assert the exit code (0 when ``ok``, else 1)."""
    result = CliRunner().invoke(cli, [*args] + (["--db", db] if db else []), input=input, env=env,
                                catch_exceptions=False)
    assert result.exit_code == (0 if ok else 1), (result.exit_code, result.stdout, result.stderr)
    return result


@pytest.fixture
def db(sqlite_url):
    """An upgraded SQLite database with the ``default`` tenant."""
    run(sqlite_url, "db", "upgrade")
    store = open_store(sqlite_url)
    try:
        if "default" not in [t.name for t in store.list_tenants()]:
            store.create_tenant("default", prefix="/default")
    finally:
        store.close()
    return sqlite_url


def documents(url):
    store = open_store(url)
    try:
        return [(d.tenant, d.name, d.version) for d in store.list_documents()]
    finally:
        store.close()


def test_db_upgrade_and_status(sqlite_url):
    status = run(sqlite_url, "db", "status").stdout
    assert "pending" in status and f"mcpgw db upgrade --db {sqlite_url}" in status
    failed = run(sqlite_url, "user", "list", ok=False)
    assert failed.stderr.startswith("Error: ") and "mcpgw db upgrade" in failed.stderr
    assert "Applied" in run(sqlite_url, "db", "upgrade").stdout
    assert "up to date" in run(sqlite_url, "db", "upgrade").stdout
    status = run(sqlite_url, "db", "status").stdout
    assert "pending" not in status and "Schema is current." in status


def test_database_url_from_the_environment(db):
    env = {"MCPGW_DATABASE_URL": db}
    run(None, "user", "add", "eve", "--role", "member", "--password-stdin", input="pw-eve-123\n", env=env)
    assert "eve" in run(None, "user", "list", env=env).stdout


def test_user_add_list_passwd(db):
    out = run(db, "user", "add", "alice", "--role", "admin", "--tenant", "default", "--password-stdin",
              input="s3cret pass\n").stdout
    assert "Created admin alice" in out
    store = open_store(db)
    try:
        assert store.authenticate("alice", "s3cret pass").role == "admin"  # the newline is not part of it
    finally:
        store.close()
    run(db, "user", "add", "bob", "--role", "member", input="pw-bob-1\npw-bob-1\n")  # prompted twice
    listing = run(db, "user", "list").stdout
    assert "alice" in listing and "admin" in listing and "bob" in listing and "member" in listing
    assert "s3cret" not in listing

    run(db, "user", "passwd", "alice", "--password-stdin", input="n3w pass\n")
    store = open_store(db)
    try:
        assert store.authenticate("alice", "n3w pass").name == "alice"
        with pytest.raises(AuthError):
            store.authenticate("alice", "s3cret pass")
    finally:
        store.close()

    empty = run(db, "user", "add", "carol", "--role", "member", "--password-stdin", input="\n", ok=False)
    assert "Error: password: is empty" in empty.stderr
    assert "carol" not in run(db, "user", "list").stdout
    taken = run(db, "user", "add", "alice", "--role", "admin", "--password-stdin", input="x-y-z-12\n", ok=False)
    assert "Error: " in taken.stderr and "alice" in taken.stderr
    assert "Error: " in run(db, "user", "passwd", "nobody", "--password-stdin", input="x-y-z-12\n", ok=False).stderr
    result = CliRunner().invoke(cli, ["user", "add", "x", "--role", "owner", "--db", db])
    assert result.exit_code == 2 and "owner" in result.stderr
    result = CliRunner().invoke(cli, ["user", "add", "x", "--password-stdin", "--db", db], input="pw-x-1\n")
    assert result.exit_code == 2 and "--role" in result.stderr


def test_key_create_prints_the_secret_once(db):
    run(db, "user", "add", "alice", "--role", "member", "--tenant", "default", "--password-stdin",
        input="pw-alice-1\n")
    result = run(db, "key", "create", "--user", "alice", "--tenant", "default", "--name", "laptop",
                 "--server", "users", "--tool", "get_user", "--expires-days", "30")
    secret = result.stdout.strip()
    assert secret and "\n" not in secret and secret not in result.stderr and "not shown again" in result.stderr
    store = open_store(db)
    try:
        key = store.verify_key(secret)
        assert (key.name, key.servers, key.tools) == ("laptop", ("users",), ("get_user",))
        assert key.expires_at is not None
    finally:
        store.close()

    listing = run(db, "key", "list").stdout
    assert secret not in listing and "laptop" in listing and key.prefix in listing
    assert "laptop" in run(db, "key", "list", "--user", "alice", "--tenant", "default").stdout
    assert "laptop" not in run(db, "key", "list", "--tenant", "other").stdout

    assert f"Revoked key {key.id}" in run(db, "key", "revoke", str(key.id)).stdout
    store = open_store(db)
    try:
        with pytest.raises(AuthError):
            store.verify_key(secret)
    finally:
        store.close()
    assert "Error: " in run(db, "key", "revoke", "99999", ok=False).stderr
    assert "Error: " in run(db, "key", "create", "--user", "nobody", "--tenant", "default", ok=False).stderr


def test_import_export_round_trip(db, tmp_path, sqlite_url):
    (tmp_path / "users.yaml").write_text(USERS)
    (tmp_path / "orders.json").write_text(json.dumps(yaml.safe_load(ORDERS)))
    out = run(db, "import", str(tmp_path / "users.yaml"), str(tmp_path / "orders.json"), "--author", "ci").stdout
    assert "default/users (version 1)" in out and "default/orders (version 1)" in out
    assert documents(db) == [("default", "orders", 1), ("default", "users", 1)]

    exported = run(db, "export").stdout
    assert [d["name"] for d in yaml.safe_load_all(exported)] == ["orders", "users"]
    run(db, "export", "--output", str(tmp_path / "all.yaml"))
    assert (tmp_path / "all.yaml").read_text() == exported
    only = run(db, "export", "--tenant", "default", "--name", "users").stdout
    assert [d["name"] for d in yaml.safe_load_all(only)] == ["users"]

    # A second database gets back the same documents.
    other = str(tmp_path / "other.db")
    other_url = f"sqlite:///{other}"
    run(other_url, "db", "upgrade")
    store = open_store(other_url)
    store.create_tenant("default", prefix="/default")
    store.close()
    run(other_url, "import", str(tmp_path / "all.yaml"))
    assert run(other_url, "export").stdout == exported

    # Importing an existing document replaces it as a new version.
    (tmp_path / "users2.yaml").write_text(USERS.replace("Get a user by email", "Get one user"))
    assert "default/users (version 2)" in run(db, "import", str(tmp_path / "users2.yaml")).stdout
    assert "Get one user" in run(db, "export", "--name", "users").stdout


def test_import_failure_writes_nothing(db, tmp_path):
    (tmp_path / "users.yaml").write_text(USERS)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    result = run(db, "import", str(tmp_path / "users.yaml"), str(tmp_path / "broken.yaml"), ok=False)
    assert result.stderr.startswith("Error: ")
    assert "default/broken" in result.stderr and "position" in result.stderr and "'bdy'" in result.stderr
    assert documents(db) == []
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    result = run(db, "import", str(tmp_path / "bad.yaml"), ok=False)
    assert "bad.yaml" in result.stderr and "line" in result.stderr
    assert "cannot read" in run(db, "import", str(tmp_path / "missing.yaml"), ok=False).stderr
    assert documents(db) == []


def test_import_detects_unla(db, tmp_path):
    unla = USERS.replace("{{ config.base }}/users/{{ args.email }}", "{{.Config.base}}/users/{{.Args.email}}") \
        + "createdAt: 2025-01-01T00:00:00Z\nupdatedAt: 2025-01-01T00:00:00Z\n"
    (tmp_path / "unla.yaml").write_text(unla)
    run(db, "import", str(tmp_path / "unla.yaml"))
    stored = yaml.safe_load(run(db, "export").stdout)
    assert stored["tools"][0]["endpoint"].replace(" ", "") == "{{config.base}}/users/{{args.email}}"
    back = run(db, "export", "--format", "unla").stdout
    assert ".Args.email" in back


def test_openapi_import(db, tmp_path):
    spec = tmp_path / "pets.json"
    spec.write_text(json.dumps(SPEC))
    dry = run(db, "openapi", "import", str(spec), "--name", "pets", "--dry-run")
    assert "getPet" in dry.stdout and "listPets" in dry.stdout and "nothing written" in dry.stderr
    assert documents(db) == []
    out = run(db, "openapi", "import", str(spec), "--name", "pets", "--prefix", "/default/pets").stdout
    assert "default/pets version 1 with 2 tool(s)" in out
    stored = yaml.safe_load(run(db, "export", "--name", "pets").stdout)
    assert sorted(t["name"] for t in stored["tools"]) == ["getPet", "listPets"]
    assert stored["routers"][0]["prefix"] == "/default/pets"
    assert "version 2" in run(db, "openapi", "import", str(spec), "--name", "pets", "--prefix", "/default/pets",
                              "--base-url", "http://127.0.0.1:9999").stdout


def test_delete_keeps_a_version(db, tmp_path):
    (tmp_path / "users.yaml").write_text(USERS)
    run(db, "import", str(tmp_path / "users.yaml"))
    out = run(db, "delete", "default/users", "--author", "ops").stdout
    assert "Deleted default/users: version 2 records the deletion" in out
    assert documents(db) == []
    store = open_store(db)
    try:
        versions = store.list_versions("default", "users")
    finally:
        store.close()
    assert [(v.version, v.action, v.author) for v in versions][:1] == [(2, "delete", "ops")]
    assert [v.action for v in versions] == ["delete", "create"]  # the history stays: restorable by rollback
    again = run(db, "delete", "default/users", ok=False)
    assert again.stderr == "Error: document default/users is already deleted (version 2)\n"
    unknown = run(db, "delete", "default/nope", ok=False)
    assert unknown.stderr.startswith("Error: document default/nope does not exist")
    bad = CliRunner().invoke(cli, ["delete", "nope", "--db", db])
    assert bad.exit_code == 2 and "expected TENANT/NAME" in bad.stderr


MCPGW = str(Path(sys.executable).parent / "mcpgw")


def mcpgw(*args, env=None, cwd=None):
    """Run the installed ``mcpgw`` script with only the ``MCPGW_*`` variables in ``env``; return the result."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MCPGW_")}
    return subprocess.run([MCPGW, *args], env={**clean, **(env or {})}, cwd=cwd, capture_output=True, text=True,
                          timeout=60)


def test_errors_name_the_flag_or_variable_the_user_set(tmp_path, db):
    flag = mcpgw("check", "--db", "bogus")
    assert flag.returncode == 1
    assert flag.stderr.startswith("Error: --db: 'bogus' is not a database URL"), flag.stderr
    from_env = mcpgw("check", env={"MCPGW_DATABASE_URL": "bogus"})
    assert from_env.returncode == 1
    assert from_env.stderr.startswith("Error: MCPGW_DATABASE_URL: 'bogus' is not a database URL"), from_env.stderr
    both = mcpgw("check", "--db", "other", env={"MCPGW_DATABASE_URL": "bogus"})  # the flag wins, and is named
    assert both.stderr.startswith("Error: --db: 'other'"), both.stderr
    spec = dict(SPEC)
    del spec["servers"]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    no_base = mcpgw("openapi", "import", str(tmp_path / "spec.json"), "--name", "pets", "--db", db)
    assert no_base.returncode == 1
    assert no_base.stderr == "Error: the spec has no servers[0].url; pass --base-url\n"


def test_check(db, tmp_path):
    assert "All 0 document(s) are valid." in run(db, "check").stdout
    (tmp_path / "users.yaml").write_text(USERS)
    run(db, "import", str(tmp_path / "users.yaml"))
    assert "All 1 document(s) are valid." in run(db, "check").stdout
    # A stored document that no longer validates (e.g. written before a rule tightened) is what check is
    # for; the store refuses to write one, so this test edits the SQLite file underneath it.
    broken = yaml.safe_load(USERS)
    broken["tools"][0]["args"][0]["position"] = "bdy"
    with sqlite3.connect(db.removeprefix("sqlite:///")) as conn:
        assert conn.execute("UPDATE document SET content = ?", (json.dumps(broken),)).rowcount == 1
    result = run(db, "check", ok=False)
    assert "default/users: tools[0].args[0].position" in result.stdout and "'bdy'" in result.stdout
    assert "1 problem(s) in 1 document(s)." in result.stderr


def test_every_command_has_help():
    runner = CliRunner()
    for args in (["db", "upgrade"], ["db", "status"], ["import"], ["export"], ["check"], ["openapi", "import"],
                 ["user", "add"], ["user", "list"], ["user", "passwd"], ["key", "create"], ["key", "list"],
                 ["key", "revoke"], ["delete"]):
        result = runner.invoke(cli, [*args, "--help"])
        assert result.exit_code == 0 and "--db URL" in result.stdout, args


def test_openapi_dry_run_warns_when_its_prefix_would_be_refused(sqlite_store, sqlite_url):
    sqlite_store.create_tenant("acme", prefix="/acme")
    spec = str(Path(__file__).resolve().parent / "data" / "users-openapi30.json")
    base = ["openapi", "import", spec, "--name", "crm", "--tenant", "acme", "--db", sqlite_url]
    fits = CliRunner().invoke(cli, [*base, "--dry-run"])
    assert fits.exit_code == 0 and "Warning" not in fits.stderr and "nothing written" in fits.stderr
    refused = CliRunner().invoke(cli, [*base, "--prefix", "/gateway/crm", "--dry-run"])
    assert refused.exit_code == 0
    assert "Warning: acme/crm: routers[0].prefix: '/gateway/crm' is outside tenant 'acme'" in refused.stderr
    assert "would be refused" in refused.stderr
    real = CliRunner().invoke(cli, [*base, "--prefix", "/gateway/crm"])
    assert real.exit_code == 1  # the warning told the truth
