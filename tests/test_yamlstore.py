"""The read-only directory store (``yaml:///dir``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mcpgw_sdk import open_store
from mcpgw_sdk.cli import cli
from mcpgw_sdk.errors import AuthError, NotFound, ReadOnlyError, StorageError
from mcpgw_sdk.store import AccountStore, ActivityStore, ConfigStore, ValueStore, require_part
from mcpgw_sdk.yamlstore import YamlStore
from tests.fixtures_store import make_document

DATA = Path(__file__).resolve().parent / "data"


def _write(path, data, *, bump_ns: int = 0):
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    if bump_ns:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump_ns))


@pytest.fixture
def configs(tmp_path):
    d = tmp_path / "configs"
    d.mkdir()
    _write(d / "users.yaml", make_document("users", tenant="acme", prefix="/acme/users"))
    (d / "orders.json").write_text(json.dumps(make_document("orders", tenant="acme", prefix="/acme/orders")))
    _write(d / "multi.yml", yaml.safe_dump(make_document("a", prefix="/default/a")) + "---\n" +
           yaml.safe_dump(make_document("b", tenant="beta", prefix="/beta/b")))
    (d / "notes.txt").write_text("not a config")
    return d


def test_loads_every_document_and_infers_tenants(configs):
    store = open_store(f"yaml:///{configs}")
    assert isinstance(store, YamlStore) and store.read_only
    config = store.load_config()
    assert [(d.tenant, d.name) for d in config.documents] == [
        ("acme", "orders"), ("acme", "users"), ("beta", "b"), ("default", "a")]
    assert {t.name: t.prefix for t in config.tenants} == {"acme": "/acme", "beta": "/beta", "default": "/default"}
    assert config.keys == () and config.revision == store.revision()
    assert store.get_document("acme", "users").content["routers"][0]["prefix"] == "/acme/users"
    assert [v.version for v in store.list_versions("acme", "users")] == [1]
    assert store.errors == []


def test_revision_changes_when_a_file_changes(configs):
    store = YamlStore(f"yaml:///{configs}")
    first = store.revision()
    assert store.revision() == first
    _write(configs / "users.yaml", make_document("users", tenant="acme", prefix="/acme/users", tools=("x", "y")),
           bump_ns=1_000_000)
    second = store.revision()
    assert second != first
    assert [t["name"] for t in store.get_document("acme", "users").content["tools"]] == ["x", "y"]
    (configs / "orders.json").unlink()
    assert store.revision() not in (first, second)
    with pytest.raises(NotFound):
        store.get_document("acme", "orders")


def test_a_broken_file_does_not_hide_the_others(configs):
    (configs / "broken.yaml").write_text("name: [unclosed\n")
    store = YamlStore(f"yaml:///{configs}")
    assert len(store.load_config().documents) == 4
    assert any(line.startswith("broken.yaml") for line in store.errors)


def test_cross_document_problems_are_reported(configs):
    _write(configs / "dup.yaml", make_document("dup", tenant="acme", prefix="/acme/users"))
    store = YamlStore(f"yaml:///{configs}")
    assert len(store.load_config().documents) == 5
    assert any(line.startswith("dup.yaml: acme/dup: routers[0].prefix: '/acme/users' is also used by acme/users")
               for line in store.errors), store.errors


def test_writes_are_refused(configs):
    store = YamlStore(f"yaml:///{configs}")
    with pytest.raises(ReadOnlyError, match="read-only"):
        store.save_document(make_document("x"))
    for call in (lambda: store.create_tenant("t"), lambda: store.create_key("u", "t"),
                 lambda: store.delete_document("acme", "users"), lambda: store.rollback("acme", "users", 1)):
        with pytest.raises(ReadOnlyError):
            call()
    with pytest.raises(AuthError):
        store.verify_key("mcpgw_x")
    assert store.list_keys() == []
    assert store.upgrade() == [] and store.check_schema() is None


def test_it_is_a_config_store_only(configs):
    store = YamlStore(f"yaml:///{configs}")
    assert isinstance(store, ConfigStore)
    assert not isinstance(store, (AccountStore, ActivityStore, ValueStore))
    with pytest.raises(ReadOnlyError, match="read-only directory store: cannot create users; edit the files"):
        require_part(store, AccountStore, "create users")


def test_callers_without_the_other_parts_behave_as_before(configs):
    """Users, secrets, chats and audit: each caller checks for the part and answers as the stubs did."""
    from gateway_server.api.app import create_app
    from gateway_server.app import create_app as create_gateway
    from mcpgw_sdk import Workspace

    store = YamlStore(f"yaml:///{configs}")
    gw = Workspace(store)
    assert list(gw.users()) == [] and list(gw.secrets(user="ann")) == []
    with pytest.raises(ReadOnlyError, match="cannot create users"):
        gw.create_user("ann", "password-1", role="member")
    with pytest.raises(ReadOnlyError, match="cannot keep per-user secrets"):
        gw.set_secret("T", "value", user="ann")
    with pytest.raises(NotFound, match="secret 'T' is not set"):
        gw.delete_secret("T", user="ann")
    client = create_app(store=store, jwt_secret="x" * 32).test_client()
    answer = client.post("/api/v1/auth/login", json={"username": "u", "password": "p"})
    assert answer.status_code == 401 and answer.get_json()["error"]["message"] == "invalid user name or password"
    assert create_gateway(store=store, audit=True).gateway.audit is None  # a directory keeps no audit trail


def test_relative_url_and_missing_directory(configs, monkeypatch):
    monkeypatch.chdir(configs.parent)
    assert len(YamlStore("yaml:///configs").load_config().documents) == 4
    with pytest.raises(StorageError, match="does not exist"):
        YamlStore("yaml:///no-such-dir")


def test_a_yaml_directory_translates_unla_files_and_check_prints_each_problem_once(tmp_path):
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
    result = CliRunner().invoke(cli, ["check", "--db", f"yaml:///{tmp_path}"])
    assert result.exit_code == 1
    combined = result.stdout + result.stderr
    assert combined.count("'nope' is not a server") == 1
    assert "template does not parse" not in combined
