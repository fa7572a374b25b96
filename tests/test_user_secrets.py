"""Per-user secrets (docs/credentials.md): sealed at rest, write-only, read by templates as ``secrets.NAME``.

The end-to-end part runs real processes: the management API, a gateway, the conformance fixture over
Streamable HTTP and a recording REST backend in this process. Two users (one through an API key's own
secret) call the same REST tool and the same upstream tool, and each backend sees the caller's own
credential; members cannot touch each other's secrets; a missing secret is a clear tool error; and no
value shows in clear in the database file, the logs, ``mcpgw export``, the versions or the audit records.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from mcpgw_sdk import secrets
from mcpgw_sdk.client import McpClient
from mcpgw_sdk.errors import ConfigError, NotFound, ReadOnlyError, SecretError
from mcpgw_sdk.sqlstore import SqlStore
from mcpgw_sdk.workspace import Workspace
from tests.fixtures_gateway import http_url, run_gateway  # noqa: F401 - http_url is a fixture
from tests.helpers import Procs, wait_for, wsgi_server
from tests.test_api import PASSWORDS, SECRETS_KEY, start_api

KEY = "unit-test-secrets-key-0123456789abcdef"

# Distinctive values, so a grep for them cannot hit anything else.
ANN_API = "ann-api-7f3a9c1e-secret"
BEN_KEY_API = "ben-key-api-5d2b8e44-secret"
ANN_UP = "ann-upstream-91c0aa7d-secret"
BEN_UP = "ben-upstream-0e6f3b52-secret"
TENANT_SHARED = "tenant-shared-c4d1f0e9-secret"
ANN_SHARED = "ann-shared-b7e2a6d3-secret"
VALUES = (ANN_API, BEN_KEY_API, ANN_UP, BEN_UP, TENANT_SHARED, ANN_SHARED)


# -- the crypto ------------------------------------------------------------------------------------

def test_seal_and_open_round_trip():
    sealed = secrets.seal("user:1", "TOKEN", "s3cr3t-value", key=KEY)
    assert "s3cr3t-value" not in sealed and sealed.startswith("v1.")
    assert secrets.open_sealed("user:1", "TOKEN", sealed, key=KEY) == "s3cr3t-value"
    assert secrets.seal("user:1", "TOKEN", "s3cr3t-value", key=KEY) != sealed  # a fresh nonce each time


def test_tampered_data_does_not_open():
    sealed = secrets.seal("user:1", "TOKEN", "s3cr3t-value", key=KEY)
    head, body = sealed.rsplit(".", 1)
    raw = bytearray(__import__("base64").b64decode(body))
    raw[-1] ^= 1
    tampered = head + "." + __import__("base64").b64encode(bytes(raw)).decode()
    with pytest.raises(SecretError, match="altered"):
        secrets.open_sealed("user:1", "TOKEN", tampered, key=KEY)
    with pytest.raises(SecretError, match="not one this version reads"):
        secrets.open_sealed("user:1", "TOKEN", "garbage", key=KEY)


def test_a_wrong_key_is_a_clear_error_never_garbage():
    sealed = secrets.seal("user:1", "TOKEN", "s3cr3t-value", key=KEY)
    with pytest.raises(SecretError, match="another secrets_key"):
        secrets.open_sealed("user:1", "TOKEN", sealed, key=KEY + "-other")


def test_sealed_values_do_not_move_between_owners_or_names():
    sealed = secrets.seal("user:1", "TOKEN", "s3cr3t-value", key=KEY)
    for owner, name in (("user:2", "TOKEN"), ("key:1", "TOKEN"), ("tenant:1", "TOKEN"), ("user:1", "OTHER")):
        with pytest.raises(SecretError, match="another owner or name"):
            secrets.open_sealed(owner, name, sealed, key=KEY)


def test_no_key_or_a_short_key_names_the_setting(monkeypatch):
    monkeypatch.delenv("MCPGW_SECRETS_KEY", raising=False)
    with pytest.raises(SecretError, match="MCPGW_SECRETS_KEY"):
        secrets.seal("user:1", "TOKEN", "v")
    with pytest.raises(SecretError, match="at least 32 characters"):
        secrets.seal("user:1", "TOKEN", "v", key="short")


def test_names_and_values_are_checked():
    secrets.check_secret("GITHUB_TOKEN", "x" * secrets.MAX_VALUE_BYTES)
    for name in ("", "a/b", "..", " x", "x" * 101, "a\x00b"):
        with pytest.raises(ConfigError, match="^name: "):
            secrets.check_secret(name, "v")
    with pytest.raises(ConfigError, match="at most 8192 bytes"):
        secrets.check_secret("T", "é" * 4097)
    for value in ("", 5, None, "a\x00b"):
        with pytest.raises(ConfigError, match="^value: "):
            secrets.check_secret("T", value)


# -- the store ---------------------------------------------------------------------------------------

@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("MCPGW_SECRETS_KEY", KEY)
    store = SqlStore(f"sqlite:///{tmp_path / 's.db'}")
    store.upgrade()
    store.create_tenant("acme")
    store.create_user("ann", "password-ann", tenants=["acme"])
    store.create_user("ben", "password-ben", tenants=["acme"])
    yield store
    store.close()


def test_store_keeps_values_sealed_and_lists_names_only(store, tmp_path):
    key, _ = store.create_key("ann", "acme")
    store.set_secret("TOKEN", "ann-value-1", user="ann")
    store.set_secret("TOKEN", "ann-value-2", user="ann", author="ann")  # replaces
    store.set_secret("TOKEN", "key-value", key_id=key.id)
    store.set_secret("TOKEN", "tenant-value", tenant="acme")
    listed = store.list_secrets(user="ann")
    assert [(s.owner_kind, s.owner, s.name, s.updated_by) for s in listed] == [("user", "ann", "TOKEN", "ann")]
    assert "ann-value" not in repr(listed)
    assert store.sealed_secrets(user="ann")["TOKEN"].open() == "ann-value-2"
    assert store.sealed_secrets(key_id=key.id)["TOKEN"].open() == "key-value"
    assert store.sealed_secrets(tenant="acme")["TOKEN"].open() == "tenant-value"
    assert store.sealed_secrets(user="ben") == {} and store.sealed_secrets(user="nobody") == {}
    assert "ann-value" not in repr(store.sealed_secrets(user="ann"))
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("s.db*"))
    for value in (b"ann-value-1", b"ann-value-2", b"key-value", b"tenant-value"):
        assert value not in raw


def test_rows_swapped_in_the_database_do_not_open(store):
    store.set_secret("TOKEN", "ann-value", user="ann")
    store.set_secret("TOKEN", "ben-value", user="ben")
    S = store.m.Secret
    with store._conn():
        ann = S.get(S.owner_kind == "user", S.name == "TOKEN", S.owner_id == store._user_row("ann").id)
        S.update(sealed=ann.sealed).where(S.owner_id == store._user_row("ben").id).execute()
    with pytest.raises(SecretError, match="another owner or name"):
        store.sealed_secrets(user="ben")["TOKEN"].open()


def test_secrets_go_with_their_owner(store):
    key, _ = store.create_key("ben", "acme")
    store.set_secret("T", "value-1", key_id=key.id)
    store.revoke_key(key.id)
    assert store.sealed_secrets(key_id=key.id) == {}
    with pytest.raises(NotFound):
        store.set_secret("T", "value-2", key_id=key.id)
    store.set_secret("T", "value-3", user="ben")
    store.delete_user("ben")
    S = store.m.Secret
    with store._conn():
        assert S.select().where(S.owner_kind == "user").count() == 0
    with pytest.raises(NotFound):
        store.delete_secret("T", user="ann")


def test_workspace_sets_lists_and_deletes(store):
    gw = Workspace(store, author="ann")
    gw.set_secret("GITHUB_TOKEN", "ghp-value")
    assert [row.name for row in gw.secrets()] == ["GITHUB_TOKEN"]
    assert "ghp-value" not in repr(gw.secrets())
    gw.set_secret("FALLBACK", "f-value", tenant="acme")
    assert [row.name for row in gw.secrets(tenant="acme")] == ["FALLBACK"]
    gw.delete_secret("GITHUB_TOKEN")
    assert list(gw.secrets()) == []
    with pytest.raises(ConfigError, match="exactly one of"):
        Workspace(store).set_secret("X", "value")


def test_a_yaml_store_refuses_secrets(tmp_path):
    from mcpgw_sdk.yamlstore import YamlStore

    (tmp_path / "docs").mkdir()
    gw = Workspace(YamlStore(f"yaml:///{tmp_path / 'docs'}"))
    with pytest.raises(ReadOnlyError, match="cannot keep per-user secrets"):
        gw.set_secret("T", "value", user="ann")
    assert list(gw.secrets(user="ann")) == []


# -- end to end --------------------------------------------------------------------------------------

def _document(base: str, upstream_url: str) -> dict:
    auth = {"mode": "apikey"}
    return {
        "name": "creds", "tenant": "default",
        "routers": [{"prefix": "/creds/rest", "server": "api", "auth": auth},
                    {"prefix": "/creds/up", "server": "up", "auth": auth},
                    {"prefix": "/creds/up-missing", "server": "up_missing", "auth": auth},
                    {"prefix": "/creds/up-refused", "server": "up_refused", "auth": auth}],
        "servers": [{"name": "api", "config": {"base": base, "shared": "{{ secrets.SHARED }}"}}],
        "tools": [
            {"name": "echo", "description": "Echo the request", "method": "POST",
             "endpoint": "{{ config.base }}/echo",
             "headers": {"Authorization": "Bearer {{ secrets.API_TOKEN }}", "X-Shared": "{{ config.shared }}"},
             "requestBody": '{"token": "{{ secrets.API_TOKEN }}"}'},
            {"name": "fail", "description": "A backend error quoting the URL", "method": "GET",
             "endpoint": "{{ config.base }}/fail/{{ secrets.API_TOKEN }}"},
            {"name": "needs_missing", "description": "Reads a secret nobody set", "method": "GET",
             "endpoint": "{{ config.base }}/echo", "headers": {"X-Never": "{{ secrets.NEVER_SET }}"}},
        ],
        "mcpServers": [
            {"name": "up", "type": "streamable-http", "url": upstream_url, "toolPrefix": "",
             "headers": {"X-Token": "{{ secrets.UP_TOKEN }}"}},
            {"name": "up_missing", "type": "streamable-http", "url": upstream_url, "toolPrefix": "",
             "headers": {"X-Token": "{{ secrets.NEVER_SET }}"}},
            # the shared session (no caller) lists the tools at the real URL; a caller's session asks for a
            # path holding their secret, which the fixture does not serve: the error quotes that URL
            {"name": "up_refused", "type": "streamable-http", "toolPrefix": "",
             "url": upstream_url + "{% if secrets.UP_TOKEN %}/x{{ secrets.UP_TOKEN }}{% endif %}"},
        ],
    }


def _text(result: dict) -> str:
    return "".join(item.get("text", "") for item in result.get("content") or [])


@pytest.fixture(scope="module")
def world(tmp_path_factory, http_url):  # noqa: F811 - the fixture
    seen: list[dict] = []

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        record = {"path": environ["PATH_INFO"], "authorization": environ.get("HTTP_AUTHORIZATION", ""),
                  "shared": environ.get("HTTP_X_SHARED", ""), "body": body}
        seen.append(record)
        if environ["PATH_INFO"].startswith("/fail/"):
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [f"no such thing: {environ['PATH_INFO']}".encode()]
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(record).encode()]

    server = wsgi_server(app)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    tmp = tmp_path_factory.mktemp("secrets")
    url = f"sqlite:///{tmp / 'gw.db'}"
    from tests.test_api import seed as seed_api

    store = seed_api(url)
    store.create_tenant("default", prefix="/")
    store.update_user("alice", tenants=["acme", "default"])
    store.update_user("bob", tenants=["globex", "default"])
    store.save_document(_document(base, http_url))
    ann_key, ann_secret = store.create_key("alice", "default", name="alice-agent")
    ben_key, ben_secret = store.create_key("bob", "default", name="bob-service")
    revision = store.revision()
    env = {"MCPGW_SECRETS_KEY": SECRETS_KEY, "MCPGW_SECRETS_CACHE_TTL": "0", "MCPGW_LOG_LEVEL": "DEBUG"}
    try:
        with Procs(tmp) as procs:
            api_base, api_proc = start_api(url, tmp)
            try:
                gw = run_gateway(procs, url, revision=revision, env=env, reload_interval=0.3)
                yield {"api": api_base, "api_proc": api_proc, "gw": gw, "procs": procs, "store": store,
                       "seen": seen, "keys": {"alice": (ann_key.id, ann_secret), "bob": (ben_key.id, ben_secret)},
                       "tmp": tmp, "url": url}
            finally:
                api_proc.stop()
    finally:
        server.shutdown()
        store.close()


def _login(api: str, user: str) -> requests.Session:
    session = requests.Session()
    resp = session.post(api + "auth/login", json={"username": user, "password": PASSWORDS[user]}, timeout=10)
    assert resp.status_code == 200, resp.text
    session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return session


def _call(world, user: str, prefix: str, tool: str, arguments: dict | None = None) -> dict:
    secret = world["keys"][user][1]
    with McpClient(world["gw"].mcp_url(prefix), headers={"X-API-Key": secret}, timeout=30) as client:
        return client.call_tool(tool, arguments or {})


@pytest.fixture(scope="module")
def secrets_set(world):
    api = world["api"]
    alice, bob, admin = _login(api, "alice"), _login(api, "bob"), _login(api, "admin")
    bob_key = world["keys"]["bob"][0]
    for session, path, value in ((alice, "me/secrets/API_TOKEN", ANN_API), (alice, "me/secrets/UP_TOKEN", ANN_UP),
                                 (alice, "me/secrets/SHARED", ANN_SHARED),
                                 (bob, f"keys/{bob_key}/secrets/API_TOKEN", BEN_KEY_API),
                                 (bob, "me/secrets/UP_TOKEN", BEN_UP),
                                 (admin, "tenants/default/secrets/SHARED", TENANT_SHARED)):
        resp = session.put(api + path, json={"value": value}, timeout=10)
        assert resp.status_code == 204, (path, resp.status_code, resp.text)
        assert resp.text == ""
    return {"alice": alice, "bob": bob, "admin": admin}


def test_each_caller_reaches_the_rest_backend_with_their_own_secret(world, secrets_set):
    seen = world["seen"]
    seen.clear()
    ann = _call(world, "alice", "/creds/rest", "echo")
    ben = _call(world, "bob", "/creds/rest", "echo")
    assert not ann.get("isError") and not ben.get("isError"), (ann, ben)
    by_token = {r["authorization"]: r for r in seen}
    assert json.loads(by_token[f"Bearer {ANN_API}"]["body"]) == {"token": ANN_API}
    assert json.loads(by_token[f"Bearer {BEN_KEY_API}"]["body"]) == {"token": BEN_KEY_API}  # the key's own secret
    # the config template: alice's own SHARED first; bob has none, so the tenant's fallback
    assert by_token[f"Bearer {ANN_API}"]["shared"] == ANN_SHARED
    assert by_token[f"Bearer {BEN_KEY_API}"]["shared"] == TENANT_SHARED


def test_each_caller_reaches_the_upstream_with_their_own_secret(world, secrets_set):
    for _ in range(2):  # twice each, interleaved: the upstream sessions are not shared between them
        ann = _call(world, "alice", "/creds/up", "header_value", {"name": "x-token"})
        ben = _call(world, "bob", "/creds/up", "header_value", {"name": "x-token"})
        assert _text(ann) == ANN_UP, ann
        assert _text(ben) == BEN_UP, ben


def test_a_missing_secret_is_a_clear_tool_error(world, secrets_set):
    for prefix, tool in (("/creds/rest", "needs_missing"), ("/creds/up-missing", "header_value")):
        result = _call(world, "alice", prefix, tool, {"name": "x-token"} if tool == "header_value" else {})
        text = _text(result)
        assert result.get("isError"), result
        assert "secret 'NEVER_SET' is not set" in text, text
        assert "My credentials" in text and "PUT /api/v1/me/secrets/NEVER_SET" in text, text
        assert "gw.set_secret('NEVER_SET'" in text, text


def test_an_upstream_error_quoting_a_secret_is_masked(world, secrets_set):
    result = _call(world, "alice", "/creds/up-refused", "header_value", {"name": "x-token"})
    text = _text(result)
    assert result.get("isError") and "up_refused" in text, result
    assert ANN_UP not in text and "/mcp/x***" in text, text


def test_an_error_text_quoting_a_secret_is_masked(world, secrets_set):
    seen = world["seen"]
    seen.clear()
    result = _call(world, "alice", "/creds/rest", "fail")
    assert seen and seen[-1]["path"] == f"/fail/{ANN_API}"  # the backend did get it
    text = _text(result)
    assert result.get("isError") and "HTTP 500" in text, result
    assert ANN_API not in text and "***" in text, text


def test_members_cannot_read_or_overwrite_each_others_secrets(world, secrets_set):
    api = world["api"]
    alice, bob = secrets_set["alice"], secrets_set["bob"]
    ann_key, ben_key = world["keys"]["alice"][0], world["keys"]["bob"][0]
    listed = alice.get(api + "me/secrets", timeout=10)
    assert listed.status_code == 200
    assert sorted(s["name"] for s in listed.json()) == ["API_TOKEN", "SHARED", "UP_TOKEN"]
    assert all(set(s) == {"owner_kind", "owner", "name", "updated_at", "updated_by"} for s in listed.json())
    assert not any(v in listed.text for v in VALUES)
    # another user's key: not visible at all
    assert bob.get(api + f"keys/{ann_key}/secrets", timeout=10).status_code == 404
    assert bob.put(api + f"keys/{ann_key}/secrets/API_TOKEN", json={"value": "evil"}, timeout=10).status_code == 404
    assert bob.delete(api + f"keys/{ann_key}/secrets/API_TOKEN", timeout=10).status_code == 404
    assert alice.get(api + f"keys/{ben_key}/secrets", timeout=10).status_code == 404
    # tenant fallbacks are the admins'
    assert bob.put(api + "tenants/default/secrets/SHARED", json={"value": "evil"}, timeout=10).status_code == 403
    assert bob.delete(api + "tenants/default/secrets/SHARED", timeout=10).status_code == 403
    assert bob.get(api + "tenants/acme/secrets", timeout=10).status_code == 404  # not bob's tenant
    names = bob.get(api + "tenants/default/secrets", timeout=10)
    assert names.status_code == 200 and [s["name"] for s in names.json()] == ["SHARED"]
    assert TENANT_SHARED not in names.text
    # bob's own write never touches alice's value
    assert bob.put(api + "me/secrets/API_TOKEN", json={"value": "bob-own-value"}, timeout=10).status_code == 204
    assert world["store"].sealed_secrets(user="alice")["API_TOKEN"].open(key=SECRETS_KEY) == ANN_API
    assert bob.delete(api + "me/secrets/API_TOKEN", timeout=10).status_code == 204
    assert bob.delete(api + "me/secrets/API_TOKEN", timeout=10).status_code == 404
    # bounds and names
    assert alice.put(api + "me/secrets/T", json={"value": "x" * 8193}, timeout=10).status_code == 422
    assert alice.put(api + "me/secrets/a..b", json={"value": "x"}, timeout=10).status_code == 422
    assert alice.put(api + "me/secrets/T", json={"value": "x", "extra": 1}, timeout=10).status_code == 422
    assert requests.put(api + "me/secrets/T", json={"value": "x"}, timeout=10).status_code == 401


def test_secret_values_appear_nowhere_in_clear(world, secrets_set):
    # run the calls first (this test may run alone)
    _call(world, "alice", "/creds/rest", "echo")
    _call(world, "alice", "/creds/rest", "fail")
    _call(world, "bob", "/creds/up", "header_value", {"name": "x-token"})
    _call(world, "bob", "/creds/up-refused", "header_value", {"name": "x-token"})
    store = world["store"]
    # earlier tests wrote audit records too: wait for this test's failed call, which the writer batches
    wait_for(lambda: any("HTTP 500" in (a.error or "") for a in store.query_audit(limit=1000)), timeout=20,
             what="the audit record of the failed call")
    audit = store.query_audit(limit=1000)
    audit_text = repr(audit) + secrets_set["admin"].get(world["api"] + "audit?limit=1000", timeout=10).text
    versions = store.list_versions("default", "creds")
    versions_text = repr(versions) + json.dumps([v.content for v in versions])
    export = CliRunner().invoke(__import__("mcpgw_sdk.cli", fromlist=["cli"]).cli, ["export", "--db", world["url"]])
    assert export.exit_code == 0, export.output
    assert "secrets.API_TOKEN" in export.output  # the template is there, the value is not
    db_path = Path(world["url"].removeprefix("sqlite:///"))
    db_bytes = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    logs = {p.name: p.read_text(errors="replace") for p in Path(world["tmp"]).glob("*.log")}
    assert any(name.startswith("api-") for name in logs) and any(name.startswith("gateway") for name in logs), logs
    for value in VALUES:
        assert value.encode() not in db_bytes, value
        assert value not in audit_text, value
        assert value not in versions_text, value
        assert value not in export.output, value
        for name, text in logs.items():
            assert value not in text, (value, name)
