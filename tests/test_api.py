"""The management API end to end: a real ``python -m gateway_server.api`` process on a free port, ``requests``."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone
from urllib.parse import urljoin

import pytest
import requests
import yaml

from mcpgw_sdk.opening import open_store
from mcpgw_sdk.records import AuditRecord
from tests.helpers import Proc, free_port, python, unavailable, wait_http

PASSWORDS = {"admin": "admin-pass-1", "alice": "alice-pass-1", "bob": "bob-pass-12"}


class Client(requests.Session):
    """A session whose URLs are relative to ``/api/v1/`` and that carries a bearer token once logged in."""

    def __init__(self, base: str, token: str | None = None):
        super().__init__()
        self.base = base
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 30)
        return super().request(method, urljoin(self.base, url.lstrip("/")), *args, **kwargs)


class Api:
    """A running API process, its store (opened in the test process too) and logged-in clients."""

    def __init__(self, base: str, store, proc: Proc):
        self.base = base
        self.store = store
        self.proc = proc

    def anonymous(self) -> Client:
        return Client(self.base)

    def login(self, user: str, password: str | None = None) -> Client:
        resp = self.anonymous().post("auth/login", json={"username": user, "password": password or PASSWORDS[user]})
        assert resp.status_code == 200, resp.text
        return Client(self.base, resp.json()["access_token"])


def seed(url: str):
    """Migrate ``url`` and add: admin; tenants acme and globex; alice (member of acme); bob (member of globex)."""
    store = open_store(url, check=False)
    store.upgrade()
    store.create_user("admin", PASSWORDS["admin"], role="admin")
    store.create_tenant("acme")
    store.create_tenant("globex")
    store.create_user("alice", PASSWORDS["alice"], tenants=["acme"])
    store.create_user("bob", PASSWORDS["bob"], tenants=["globex"])
    return store


#: The secrets_key of the API processes tests start (per-user secrets: docs/credentials.md).
SECRETS_KEY = "test-secrets-key-0123456789-abcdefghij"


def start_api(url: str, log_dir, *, env: dict | None = None) -> tuple[str, Proc]:
    """Start ``python -m gateway_server.api`` on a free port; return its /api/v1/ base URL and the process."""
    port = free_port()
    proc = Proc([python(), "-m", "gateway_server.api", "--db", url, "--host", "127.0.0.1", "--port", str(port)],
                env={"MCPGW_JWT_SECRET": "", "MCPGW_SECRETS_KEY": SECRETS_KEY, **(env or {})},
                log=log_dir / f"api-{port}.log")
    base = f"http://127.0.0.1:{port}/api/v1/"
    try:
        wait_http(base + "openapi.json", status=200, timeout=30)
    except AssertionError:
        proc.stop()
        raise AssertionError("the API did not start:\n" + proc.output()) from None
    return base, proc


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """One API process on a seeded SQLite database, shared by this module's tests (each uses its own names)."""
    tmp = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{tmp / 'api.db'}"
    store = seed(url)
    base, proc = start_api(url, tmp)
    yield Api(base, store, proc)
    proc.stop()
    store.close()


def doc(name: str, tenant: str = "acme", *, description: str = "", extra_tools: int = 0) -> dict:
    """A small valid REST document served at /<tenant>/<name>."""
    tools = [{"name": "get_user", "description": description or "Get a user", "method": "GET",
              "endpoint": "http://127.0.0.1:5236/users/{{ args.id }}",
              "args": [{"name": "id", "position": "path", "required": True, "type": "string"}]}]
    tools += [{"name": f"t{i}", "method": "GET", "endpoint": "http://127.0.0.1:5236/x"} for i in range(extra_tools)]
    return {"name": name, "tenant": tenant, "routers": [{"prefix": f"/{tenant}/{name}", "server": name}],
            "servers": [{"name": name}], "tools": tools}


def error_of(resp: requests.Response) -> dict:
    body = resp.json()
    assert set(body) == {"error"} and {"code", "message", "details"} <= set(body["error"]), body
    return body["error"]


# -- auth ---------------------------------------------------------------------------------------------


def test_login_refresh_me_and_password_change(api):
    anon = api.anonymous()
    resp = anon.post("auth/login", json={"username": "admin", "password": "nope"})
    assert resp.status_code == 401 and error_of(resp)["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert anon.post("auth/login", json={"username": "admin"}).status_code == 422

    tokens = anon.post("auth/login", json={"username": "admin", "password": PASSWORDS["admin"]}).json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    me = Client(api.base, tokens["access_token"]).get("me").json()
    assert me["name"] == "admin" and me["role"] == "admin"

    # a refresh token is not an access token, and vice versa
    assert Client(api.base, tokens["refresh_token"]).get("me").status_code == 401
    assert anon.post("auth/refresh", json={"refresh_token": tokens["access_token"]}).status_code == 401
    fresh = anon.post("auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert fresh.status_code == 200 and Client(api.base, fresh.json()["access_token"]).get("me").ok
    assert Client(api.base, tokens["access_token"] + "x").get("me").status_code == 401

    api.store.create_user("carol", "carol-pass-1", tenants=["acme"])
    carol = api.login("carol", "carol-pass-1")
    resp = carol.post("me/password", json={"current_password": "wrong-one", "new_password": "carol-pass-2"})
    assert resp.status_code == 403 and "current_password" in error_of(resp)["message"]
    short = carol.post("me/password", json={"current_password": "carol-pass-1", "new_password": "short"})
    assert short.status_code == 422 and error_of(short)["details"][0].startswith("new_password")
    old_refresh = anon.post("auth/login", json={"username": "carol", "password": "carol-pass-1"}).json()
    changed = carol.post("me/password", json={"current_password": "carol-pass-1", "new_password": "carol-pass-2"})
    assert changed.status_code == 200
    # every earlier token of carol's is void; the answer carries fresh ones
    assert carol.get("me").status_code == 401
    assert anon.post("auth/refresh", json={"refresh_token": old_refresh["refresh_token"]}).status_code == 401
    assert Client(api.base, changed.json()["access_token"]).get("me").json()["name"] == "carol"
    assert anon.post("auth/login", json={"username": "carol", "password": "carol-pass-1"}).status_code == 401
    api.login("carol", "carol-pass-2")


def test_failed_logins_are_rate_limited_per_address_and_name(api):
    api.store.create_user("dave", "dave-pass-12")
    anon = api.anonymous()
    for _ in range(10):
        assert anon.post("auth/login", json={"username": "dave", "password": "bad"}).status_code == 401
    resp = anon.post("auth/login", json={"username": "dave", "password": "dave-pass-12"})
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert error_of(resp)["code"] == "rate_limited"
    api.login("admin")  # other names from the same address are unaffected


def test_disabled_or_deleted_users_lose_access(api):
    admin = api.login("admin")
    assert admin.post("users", json={"name": "erin", "password": "erin-pass-1"}).status_code == 201
    erin = api.login("erin", "erin-pass-1")
    assert erin.get("me").ok
    assert admin.patch("users/erin", json={"active": False}).json()["active"] is False
    assert erin.get("me").status_code == 401
    assert admin.patch("users/erin", json={"active": True}).json()["active"] is True
    assert erin.get("me").status_code == 401  # re-enabling does not revive old tokens
    erin = api.login("erin", "erin-pass-1")
    assert admin.patch("users/erin", json={"password": "erin-pass-2"}).status_code == 200
    assert erin.get("me").status_code == 401  # an admin reset voids them too
    erin = api.login("erin", "erin-pass-2")
    assert admin.delete("users/erin").status_code == 204
    assert erin.get("me").status_code == 401
    assert admin.post("users", json={"name": "erin", "password": "erin-pass-3"}).status_code == 201
    assert erin.get("me").status_code == 401  # a new account of the same name inherits nothing


# -- users, tenants, keys -----------------------------------------------------------------------------


def test_users_and_tenants_admin_crud(api):
    admin = api.login("admin")
    resp = admin.post("tenants", json={"name": "initech", "description": "TPS reports"})
    assert resp.status_code == 201 and resp.json()["prefix"] == "/initech"
    assert admin.post("tenants", json={"name": "initech"}).status_code == 409
    assert admin.patch("tenants/initech", json={"description": "x"}).json()["description"] == "x"
    assert any(t["name"] == "initech" for t in admin.get("tenants").json())

    resp = admin.post("users", json={"name": "frank", "password": "frank-pass", "tenants": ["initech"]})
    assert resp.status_code == 201 and resp.json()["tenants"] == ["initech"] and resp.json()["role"] == "member"
    assert admin.post("users", json={"name": "frank", "password": "frank-pass"}).status_code == 409
    bad = admin.post("users", json={"name": "x y", "password": "p", "role": "root"})
    assert bad.status_code == 422 and len(error_of(bad)["details"]) == 3
    missing = admin.patch("users/frank", json={"tenants": ["nope"]})
    assert missing.status_code == 422 and "nope" in error_of(missing)["message"]
    updated = admin.patch("users/frank", json={"tenants": ["initech", "acme"], "role": "admin"}).json()
    assert updated["role"] == "admin" and sorted(updated["tenants"]) == ["acme", "initech"]
    assert "frank" in [u["name"] for u in admin.get("users").json()]
    assert admin.get("users/frank").json()["name"] == "frank"
    assert admin.delete("users/admin").status_code == 409  # not yourself
    assert admin.patch("users/admin", json={"role": "member"}).status_code == 409
    assert admin.patch("users/admin", json={"password": "no-current-needed"}).status_code == 409
    assert admin.delete("users/frank").status_code == 204
    assert admin.get("users/frank").status_code == 404
    assert admin.delete("tenants/initech").status_code == 204
    assert admin.get("tenants/initech").status_code == 404

    alice = api.login("alice")
    assert alice.get("users").status_code == 403
    assert alice.post("tenants", json={"name": "mine"}).status_code == 403
    assert [t["name"] for t in alice.get("tenants").json()] == ["acme"]


def test_api_keys_members_manage_their_own(api):
    alice, admin = api.login("alice"), api.login("admin")
    resp = alice.post("keys", json={"tenant": "acme", "name": "ci", "tools": ["get_user"]})
    assert resp.status_code == 201
    key = resp.json()
    assert key["secret"].startswith(key["prefix"]) and key["user"] == "alice" and key["tools"] == ["get_user"]
    assert api.store.verify_key(key["secret"]).id == key["id"]
    listed = alice.get("keys").json()
    assert [k["id"] for k in listed] == [key["id"]] and "secret" not in listed[0]
    assert alice.get(f"keys/{key['id']}").json()["name"] == "ci"

    assert alice.post("keys", json={"tenant": "globex"}).status_code == 404  # not her tenant
    assert alice.post("keys", json={"tenant": "acme", "user": "bob"}).status_code == 404
    past = (datetime.now(timezone.utc) - timedelta(days=1)).isoformat()
    assert alice.post("keys", json={"tenant": "acme", "expires_at": past}).status_code == 422

    bobs = admin.post("keys", json={"tenant": "globex", "user": "bob", "name": "bob-key"}).json()
    assert bobs["user"] == "bob"
    assert {k["id"] for k in admin.get("keys", params={"user": "bob"}).json()} == {bobs["id"]}
    assert {key["id"], bobs["id"]} <= {k["id"] for k in admin.get("keys").json()}
    assert alice.get(f"keys/{bobs['id']}").status_code == 404
    assert alice.post(f"keys/{bobs['id']}/revoke").status_code == 404

    revoked = alice.post(f"keys/{key['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json()["revoked"] is True
    with pytest.raises(Exception, match="(?i)revoked|invalid|unknown"):
        api.store.verify_key(key["secret"])


# -- documents ----------------------------------------------------------------------------------------


def test_documents_create_get_yaml_and_conflicts(api):
    admin = api.login("admin")
    body = yaml.safe_dump(doc("users"), sort_keys=False)
    resp = admin.post("documents", data=body, headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 201, resp.text
    assert resp.json()["version"] == 1 and resp.headers["ETag"] == '"1"'
    again = admin.post("documents", json=doc("users"))
    assert again.status_code == 409 and error_of(again)["code"] == "conflict"

    got = admin.get("documents/acme/users")
    assert got.json()["content"]["tools"][0]["name"] == "get_user" and got.json()["updated_by"] == "admin"
    assert "checked" not in got.json() and "checked" not in resp.json()  # the store's validation mark is internal
    as_yaml = admin.get("documents/acme/users", headers={"Accept": "application/yaml"})
    assert as_yaml.headers["Content-Type"].startswith("application/yaml")
    assert yaml.safe_load(as_yaml.text)["name"] == "users"

    v2 = admin.put("documents/acme/users", json=doc("users", description="v2"), headers={"If-Match": '"1"'})
    assert v2.status_code == 200 and v2.json()["version"] == 2
    stale = admin.put("documents/acme/users", json=doc("users", description="v3"), params={"base_version": 1})
    err = error_of(stale)
    assert stale.status_code == 409 and err["details"] == [{"base_version": 1, "current_version": 2}]
    assert "version 1" in err["message"] and "version 2" in err["message"]
    mismatch = admin.put("documents/acme/users", json=doc("other"))
    assert mismatch.status_code == 422 and "name" in error_of(mismatch)["message"]
    new = admin.put("documents/acme/fresh", data=yaml.safe_dump(doc("fresh")), headers={"Content-Type": "text/yaml"})
    assert new.status_code == 201 and new.json()["version"] == 1

    names = [(d["tenant"], d["name"]) for d in admin.get("documents", params={"tenant": "acme"}).json()]
    assert ("acme", "users") in names and ("acme", "fresh") in names
    assert "content" not in admin.get("documents").json()[0]


def test_document_errors_are_json_with_fields(api):
    admin = api.login("admin")
    invalid = doc("broken")
    invalid["tools"][0]["args"][0]["position"] = "bdy"
    resp = admin.post("documents", json=invalid)
    err = error_of(resp)
    assert resp.status_code == 422 and err["code"] == "invalid"
    assert any("tools[0].args[0].position" in line for line in err["details"])
    assert admin.get("documents/acme/broken").status_code == 404

    bad_json = admin.post("documents", data="{nope", headers={"Content-Type": "application/json"})
    assert bad_json.status_code == 400 and error_of(bad_json)["code"] == "bad_request"
    bad_yaml = admin.post("documents", data="a: [1,", headers={"Content-Type": "application/yaml"})
    assert bad_yaml.status_code == 400
    assert admin.post("documents", data="x", headers={"Content-Type": "text/plain"}).status_code == 415
    assert admin.post("documents", json=[1, 2]).status_code == 422
    assert error_of(admin.get("no/such/route"))["code"] == "not_found"
    not_allowed = admin.put("tenants")
    assert not_allowed.status_code == 405 and "GET" in not_allowed.headers["Allow"]


def test_validate_is_a_dry_run(api):
    admin = api.login("admin")
    ok = admin.post("documents/validate", json=doc("dry"))
    assert ok.status_code == 200 and ok.json() == {"valid": True, "errors": []}
    bad = doc("dry")
    bad["tools"][0]["name"] = "bad name!"
    verdict = admin.post("documents/validate", data=yaml.safe_dump(bad), headers={"Content-Type": "application/yaml"})
    assert verdict.json()["valid"] is False and any("tools[0].name" in e for e in verdict.json()["errors"])
    admin.post("documents", json=doc("taken"))
    clash = doc("other-name")
    clash["routers"][0]["prefix"] = "/acme/taken"
    verdict = admin.post("documents/validate", json=clash).json()
    assert verdict["valid"] is False and any("/acme/taken" in e for e in verdict["errors"])
    assert admin.get("documents/acme/dry").status_code == 404


def test_versions_diff_and_rollback_of_a_deleted_document(api):
    admin = api.login("admin")
    admin.post("documents", json=doc("hist"))
    admin.put("documents/acme/hist", json=doc("hist", description="second"))
    assert admin.delete("documents/acme/hist", headers={"If-Match": '"1"'}).status_code == 409
    assert admin.delete("documents/acme/hist").status_code == 204
    assert admin.get("documents/acme/hist").status_code == 404
    deleted = admin.get("documents", params={"tenant": "acme", "include_deleted": "true"}).json()
    assert any(d["name"] == "hist" and d["deleted"] for d in deleted)

    versions = admin.get("documents/acme/hist/versions").json()
    assert [(v["version"], v["action"]) for v in versions] == [(3, "delete"), (2, "update"), (1, "create")]
    v1 = admin.get("documents/acme/hist/versions/1").json()
    assert v1["content"]["tools"][0]["description"] == "Get a user" and v1["author"] == "admin"
    assert admin.get("documents/acme/hist/versions/3").json()["content"] is None
    assert admin.get("documents/acme/hist/versions/9").status_code == 404
    diff = admin.get("documents/acme/hist/diff", params={"a": 1, "b": 2}).json()["diff"]
    assert "-  description: Get a user" in diff and "+  description: second" in diff
    assert admin.get("documents/acme/hist/diff", params={"a": 1}).status_code == 400

    restored = admin.post("documents/acme/hist/rollback", json={"version": 1})
    assert restored.status_code == 200 and restored.json()["version"] == 4
    assert restored.json()["content"]["tools"][0]["description"] == "Get a user"
    latest = admin.get("documents/acme/hist/versions").json()[0]
    assert latest["action"] == "revert" and latest["reverted_from"] == 1
    assert admin.post("documents/acme/hist/rollback", json={"version": "1"}).status_code == 422


# -- import / export ----------------------------------------------------------------------------------

UNLA = textwrap.dedent("""\
    name: mock-user-svc
    tenant: acme
    routers:
      - server: mock-user-svc
        prefix: /acme/mock-user
    servers:
      - name: mock-user-svc
        description: Mock user service
        allowedTools: [register_user, get_user]
        config:
          Authorization: 'Bearer {{.Request.Headers.Authorization}}'
    tools:
      - name: register_user
        method: POST
        endpoint: http://localhost:5236/users
        headers:
          Content-Type: application/json
          Authorization: '{{.Config.Authorization}}'
        args:
          - {name: username, position: body, required: true, type: string}
          - {name: email, position: body, required: true, type: string}
        requestBody: '{"username": "{{.Args.username}}", "email": "{{.Args.email}}"}'
        responseBody: '{{.Response.Body}}'
      - name: get_user
        method: GET
        endpoint: http://localhost:5236/users/{{.Args.email}}
        args:
          - {name: email, position: path, required: true, type: string}
    """)


def test_import_ours_and_unla_all_or_nothing(api):
    admin = api.login("admin")
    stream = "---\n".join(yaml.safe_dump(doc(n, "globex")) for n in ("imp-a", "imp-b"))
    resp = admin.post("import", data=stream, headers={"Content-Type": "application/yaml"})
    assert resp.status_code == 200, resp.text
    assert [(d["tenant"], d["name"]) for d in resp.json()["documents"]] == [("globex", "imp-a"), ("globex", "imp-b")]
    # importing an existing document replaces it as a new version
    again = admin.post("import", json=[doc("imp-a", "globex", description="changed")])
    assert again.json()["documents"][0]["version"] == 2

    broken = doc("imp-c", "globex")
    broken["tools"][0]["method"] = 7
    resp = admin.post("import", json=[doc("imp-ok", "globex"), broken])
    assert resp.status_code == 422 and any("imp-c" in line for line in error_of(resp)["details"])
    assert admin.get("documents/globex/imp-ok").status_code == 404  # nothing half-written

    unla = admin.post("import", data=UNLA, headers={"Content-Type": "application/yaml"})
    assert unla.status_code == 200, unla.text
    content = admin.get("documents/acme/mock-user-svc").json()["content"]
    tools = {t["name"]: t for t in content["tools"]}
    assert "{{." not in yaml.safe_dump(content)
    assert "args.email" in tools["get_user"]["endpoint"]
    assert "args.username" in tools["register_user"]["requestBody"]
    go = doc("imp-d", "globex")
    go["tools"][0]["endpoint"] = "http://127.0.0.1:5236/users/{{.Args.id}}"
    forced = admin.post("import", params={"format": "unla"}, json=[go])
    assert forced.status_code == 200, forced.text
    as_ours = admin.post("import", params={"format": "mcpgw"}, json=[dict(go, name="imp-f")])
    assert as_ours.status_code == 422
    assert admin.post("import", params={"format": "xml"}, json=[doc("imp-e", "globex")]).status_code == 400


SPEC = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "servers": [{"url": "http://127.0.0.1:5236"}],
    "paths": {
        "/pets": {"get": {"operationId": "listPets", "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer"}}], "responses": {"200": {"description": "ok"}}}},
        "/pets/{id}": {"get": {"operationId": "getPet", "parameters": [
            {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "ok"}}}},
    },
}


def test_import_openapi_dry_run_then_save(api):
    pytest.importorskip("mcpgw_sdk.openapi")
    admin = api.login("admin")
    dry = admin.post("import/openapi", json={"spec": SPEC, "name": "pets", "tenant": "acme", "dry_run": True})
    assert dry.status_code == 200, dry.text
    assert dry.json()["dry_run"] is True and sorted(dry.json()["tools"]) == ["getPet", "listPets"]
    assert admin.get("documents/acme/pets").status_code == 404
    saved = admin.post("import/openapi", json={"spec": yaml.safe_dump(SPEC), "name": "pets", "tenant": "acme"})
    assert saved.status_code == 201, saved.text
    assert saved.json()["document"]["version"] == 1
    content = admin.get("documents/acme/pets").json()["content"]
    assert sorted(t["name"] for t in content["tools"]) == ["getPet", "listPets"]
    assert admin.post("import/openapi", json={"name": "x", "tenant": "acme"}).status_code == 422
    garbage = admin.post("import/openapi", json={"spec": {"openapi": 3}, "name": "junk", "tenant": "acme"})
    assert garbage.status_code == 422
    alice = api.login("alice")
    assert alice.post("import/openapi", json={"url": "http://127.0.0.1:1/x", "name": "x",
                                              "tenant": "acme"}).status_code == 403


def test_export_yaml_by_tenant_document_and_format(api):
    admin = api.login("admin")
    admin.post("documents", json=doc("exp-a", "globex"))
    admin.post("documents", json=doc("exp-b", "globex"))
    resp = admin.get("export", params={"tenant": "globex"})
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("application/yaml")
    docs = list(yaml.safe_load_all(resp.text))
    assert {"exp-a", "exp-b"} <= {d["name"] for d in docs} and {d["tenant"] for d in docs} == {"globex"}
    one = list(yaml.safe_load_all(admin.get("export", params={"tenant": "globex", "name": "exp-a"}).text))
    assert [d["name"] for d in one] == ["exp-a"]
    unla = admin.get("export", params={"tenant": "globex", "name": "exp-a", "format": "unla"}).text
    assert "{{.Args.id}}" in unla.replace(" ", "")
    assert admin.get("export", params={"name": "exp-a"}).status_code == 400
    assert admin.get("export", params={"tenant": "globex", "name": "nope"}).status_code == 404
    # and what is exported imports again unchanged
    assert admin.post("import", data=resp.text, headers={"Content-Type": "application/yaml"}).status_code == 200


# -- chats, audit, status -----------------------------------------------------------------------------


def test_chats_are_private_to_their_owner(api):
    alice, bob, admin = api.login("alice"), api.login("bob"), api.login("admin")
    chat = alice.post("chats", json={"title": "Try tools", "prefix": "/acme/users", "settings": {"model": "m"}})
    assert chat.status_code == 201
    cid = chat.json()["id"]
    assert alice.post(f"chats/{cid}/messages", json={"role": "user", "content": {"text": "hi"}}).status_code == 201
    api.store.add_chat_message(cid, "assistant", {"text": "hello"})
    messages = alice.get(f"chats/{cid}/messages").json()
    assert [(m["seq"], m["role"]) for m in messages] == [(1, "user"), (2, "assistant")]
    assert alice.patch(f"chats/{cid}", json={"title": "Renamed"}).json()["title"] == "Renamed"
    assert [c["id"] for c in alice.get("chats").json()] == [cid]

    assert bob.get(f"chats/{cid}").status_code == 404
    assert bob.get(f"chats/{cid}/messages").status_code == 404
    assert bob.delete(f"chats/{cid}").status_code == 404
    assert cid not in [c["id"] for c in bob.get("chats").json()]
    assert admin.get(f"chats/{cid}").json()["user"] == "alice"
    assert cid in [c["id"] for c in admin.get("chats", params={"user": "alice"}).json()]
    assert alice.delete(f"chats/{cid}").status_code == 204
    assert alice.get(f"chats/{cid}").status_code == 404


def test_audit_filters_and_member_scope(api):
    now = datetime.now(timezone.utc)
    records = [AuditRecord(ts=now - timedelta(minutes=i), tenant="acme" if i % 2 else "globex",
                           prefix="/acme/users" if i % 2 else "/globex/x", server="users",
                           tool="get_user" if i < 6 else "list_users", outcome="ok" if i % 3 else "error",
                           latency_ms=1.5 * i, user="alice" if i % 2 else "bob") for i in range(10)]
    api.store.write_audit(records)
    admin, alice = api.login("admin"), api.login("alice")
    everything = admin.get("audit", params={"limit": 1000}).json()
    assert len(everything) >= 10 and everything[0]["ts"] >= everything[-1]["ts"]
    acme = admin.get("audit", params={"tenant": "acme"}).json()
    assert acme and {r["tenant"] for r in acme} == {"acme"}
    errors = admin.get("audit", params={"outcome": "error"}).json()
    assert errors and {r["outcome"] for r in errors} == {"error"}
    tool = admin.get("audit", params={"tool": "list_users"}).json()
    assert len(tool) == 4
    since = admin.get("audit", params={"since": (now - timedelta(minutes=2, seconds=30)).isoformat()}).json()
    assert len(since) == 3
    until = admin.get("audit", params={"until": (now - timedelta(minutes=7, seconds=30)).isoformat(),
                                       "tool": "list_users"}).json()
    assert len(until) == 2
    page = admin.get("audit", params={"tool": "list_users", "limit": 2, "offset": 1}).json()
    assert [r["latency_ms"] for r in page] == [1.5 * 7, 1.5 * 8]
    assert admin.get("audit", params={"limit": 0}).status_code == 400
    assert admin.get("audit", params={"since": "yesterday"}).status_code == 400

    mine = alice.get("audit", params={"limit": 1000}).json()
    assert mine and {r["tenant"] for r in mine} == {"acme"}
    assert alice.get("audit", params={"tenant": "globex"}).status_code == 404


def test_status_counts_what_the_caller_sees(api):
    admin, alice = api.login("admin"), api.login("alice")
    before = admin.get("status").json()
    admin.post("documents", json=doc("status-doc"))
    after = admin.get("status").json()
    assert after["revision"] > before["revision"] and after["documents"] == before["documents"] + 1
    mine = alice.get("status").json()
    assert mine["tenants"] == 1 and mine["documents"] == len(alice.get("documents").json())


# -- the command line and the JWT secret --------------------------------------------------------------


def test_mcpgw_api_command_is_registered():
    from click.testing import CliRunner

    from gateway_server.api.commands import register
    from mcpgw_sdk.cli import cli

    register(cli)
    result = CliRunner().invoke(cli, ["api", "--help"])
    assert result.exit_code == 0
    for option in ("--db", "--host", "--port", "--upgrade"):
        assert option in result.output


def test_jwt_secret_is_generated_once_per_database_and_never_shared(tmp_path, monkeypatch):
    from gateway_server.api import create_app

    monkeypatch.delenv("MCPGW_JWT_SECRET", raising=False)
    one, two = (open_store(f"sqlite:///{tmp_path / n}.db", check=False) for n in ("one", "two"))
    for store in (one, two):
        store.upgrade()
        store.create_user("admin", "admin-pass-1", role="admin")
    first = create_app(store=one).test_client()
    token = first.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-pass-1"}).json
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert create_app(store=one).test_client().get("/api/v1/me", headers=headers).status_code == 200
    assert create_app(store=two).test_client().get("/api/v1/me", headers=headers).status_code == 401
    monkeypatch.setenv("MCPGW_JWT_SECRET", "an-explicit-secret-of-some-length")
    explicit = create_app(store=two).test_client()
    assert explicit.get("/api/v1/me", headers=headers).status_code == 401
    one.close()
    two.close()


def test_login_limiter_window_and_sweep():
    import time
    from collections import deque

    from gateway_server.api.auth import LoginLimiter, RateLimited

    limiter = LoginLimiter(limit=2, window=60)
    limiter.failed("10.0.0.1", "u")
    limiter.check("10.0.0.1", "u")
    limiter.failed("10.0.0.1", "u")
    with pytest.raises(RateLimited) as info:
        limiter.check("10.0.0.1", "u")
    assert 0 < info.value.retry_after <= 60
    limiter.check("10.0.0.2", "u")  # another address
    limiter.check("10.0.0.1", "v")  # another name
    limiter._failures[("10.0.0.1", "u")] = deque([time.monotonic() - 61] * 2)
    limiter.check("10.0.0.1", "u")  # aged out
    limiter.MAX_TRACKED = 1
    limiter._failures[("old", "x")] = deque([time.monotonic() - 61])
    limiter.failed("new", "y")
    assert ("old", "x") not in limiter._failures and ("new", "y") in limiter._failures


@pytest.mark.e2e  # starts the API under gunicorn
def test_gunicorn_workers_share_the_stored_secret(tmp_path):
    import shutil
    import sys
    from pathlib import Path

    gunicorn = shutil.which("gunicorn") or str(Path(sys.executable).parent / "gunicorn")
    if not Path(gunicorn).exists():
        unavailable("gunicorn is not installed (the production extra)")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    seed(url).close()
    port = free_port()
    proc = Proc([gunicorn, "-k", "gevent", "-w", "3", "--graceful-timeout", "2", "-b", f"127.0.0.1:{port}",
                 "gateway_server.api.wsgi:app"], env={"MCPGW_DATABASE_URL": url, "MCPGW_JWT_SECRET": ""},
                log=tmp_path / "gunicorn.log")
    try:
        base = f"http://127.0.0.1:{port}/api/v1/"
        wait_http(base + "openapi.json", status=200, timeout=30)
        token = Api(base, None, proc).login("admin").headers["Authorization"]
        # fresh connections land on any worker: every one must accept the token another signed
        statuses = {requests.get(base + "me", headers={"Authorization": token, "Connection": "close"},
                                 timeout=10).status_code for _ in range(30)}
        assert statuses == {200}, proc.output()[-2000:]
    finally:
        proc.stop()


@pytest.mark.parametrize("content_type, body", [("application/json", "[" * 100_000),
                                                ("application/json", '{"a":' * 100_000),
                                                ("application/yaml", "a: " + "[" * 20_000)])
def test_deeply_nested_document_bodies_are_400(api, content_type, body):
    resp = api.login("admin").post("documents", data=body, headers={"Content-Type": content_type})
    assert resp.status_code == 400, resp.text[:300]
    assert "nested too deeply" in error_of(resp)["message"]
