"""One name rule for every object, on every backend: bad names and unstorable text are a 4xx, nothing saved."""

from __future__ import annotations

import pytest

from mcpgw_sdk.errors import ConfigError
from mcpgw_sdk.names import NAME_MAX, account_problem, name_problem
from tests.fixtures_store import make_document
from tests.test_api import Api, doc, error_of, seed, start_api

BAD_NAMES = {
    "newline": "a\nb",
    "nul": "a\x00b",
    "lone-surrogate": "a\ud800b",
    "too-long": "x" * 300,
    "slash": "a/b",
    "dot-dot": "..",
    "dots-inside": "a..b",
    "tab": "a\tb",
    "line-separator": "a\u2028b",
    "trailing-blank": "ab ",
}


def test_the_rule():
    for good in ("users", "Users v2", "x" * NAME_MAX, "a.b", "café"):
        assert name_problem(good) is None, good
    for label, bad in BAD_NAMES.items():
        assert name_problem(bad), label
    assert account_problem("acme-1.eu@x") is None
    assert account_problem("a b") and account_problem("..")


@pytest.mark.backends
def test_store_refuses_bad_names_before_writing(store):
    revision = store.revision()
    for bad in BAD_NAMES.values():
        content = make_document("ok", tenant="acme")
        content["name"] = bad
        with pytest.raises(ConfigError, match="name"):
            store.save_document(content)
        with pytest.raises(ConfigError):
            store.create_tenant(bad)
        with pytest.raises(ConfigError):
            store.create_user(bad, "long-enough-pw")
        tenant_doc = make_document("ok", tenant=bad, prefix="/t/ok")
        with pytest.raises(ConfigError, match="tenant"):
            store.save_document(tenant_doc)
        server_doc = make_document("ok", tenant="acme", server=bad)
        with pytest.raises(ConfigError, match=r"servers\[0\]\.name"):
            store.save_document(server_doc)
    assert store.revision() == revision
    for text in ("x\x00y", "x\ud800y"):
        content = make_document("ok", tenant="acme")
        content["tools"][0]["description"] = text
        with pytest.raises(ConfigError, match=r"tools\[0\]\.description"):
            store.save_document(content)
        with pytest.raises(ConfigError, match="description"):
            store.create_tenant("t1", description=text)
    store.create_user("u1", "long-enough-pw")
    store.create_tenant("acme")
    revision = store.revision()
    with pytest.raises(ConfigError):
        store.create_key("u1", "acme", name="ci\nkey")
    # lookups with such names find nothing and never reach the driver as an error
    for bad in ("a\x00b", "a\ud800b"):
        with pytest.raises((LookupError, ConfigError)):
            store.get_tenant(bad)
        with pytest.raises((LookupError, ConfigError)):
            store.get_document("acme", bad)
    assert store.list_documents() == [] and [t.name for t in store.list_tenants()] == ["acme"]
    assert [u.name for u in store.list_users()] == ["u1"] and store.list_keys() == []
    assert store.revision() == revision


@pytest.mark.backends
@pytest.mark.e2e  # starts the API process
def test_api_answers_4xx_to_bad_names_and_saves_nothing(db_url, tmp_path):
    store = seed(db_url)
    base, proc = start_api(db_url, tmp_path)
    try:
        api = Api(base, store, proc)
        admin = api.login("admin")
        revision = store.revision()
        for label, bad in BAD_NAMES.items():
            content = doc("ok")
            content["name"] = bad
            for resp in (admin.post("documents", json=content),
                         admin.post("documents/validate", json=content),
                         admin.post("import", json=[content]),
                         admin.post("tenants", json={"name": bad}),
                         admin.post("users", json={"name": bad, "password": "long-enough-pw"}),
                         admin.post("keys", json={"tenant": "acme", "name": bad})):
                if resp.request.path_url.endswith("validate"):
                    assert resp.status_code == 200 and resp.json()["valid"] is False, (label, resp.text)
                    continue
                assert 400 <= resp.status_code < 500, (label, resp.request.path_url, resp.status_code, resp.text)
                error_of(resp)
            tenant_doc = doc("ok")
            tenant_doc["tenant"] = bad
            assert 400 <= admin.post("documents", json=tenant_doc).status_code < 500, label
        for text in ("x\x00y", "x\ud800y"):
            assert admin.post("tenants", json={"name": "t2", "description": text}).status_code == 422
            content = doc("ok", description=text)
            assert admin.post("documents", json=content).status_code == 422
        for path in ("documents/acme/a%0Ab", "documents/acme/a%00b", "tenants/a%00b", "users/a%00b"):
            resp = admin.put(path, json=doc("x")) if path.startswith("documents") else admin.get(path)
            assert 400 <= resp.status_code < 500, (path, resp.text)
        assert api.anonymous().post("auth/login", json={"username": "a\x00", "password": "x"}).status_code == 422
        assert admin.get("audit", params={"tool": "a\x00"}).status_code == 400
        assert store.list_documents(include_deleted=True) == []
        assert sorted(t.name for t in store.list_tenants()) == ["acme", "globex"]
        assert sorted(u.name for u in store.list_users()) == ["admin", "alice", "bob"]
        assert store.list_keys() == []
        assert store.revision() == revision
        assert "Traceback" not in proc.output()
    finally:
        proc.stop()
        store.close()
