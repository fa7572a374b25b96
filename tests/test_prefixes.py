"""Prefixes: normalised, no '.'/'..' segments, tenants' URL spaces disjoint (the root '/' is the catch-all)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mcpgw_sdk import unla
from mcpgw_sdk.errors import ConfigError
from tests.fixtures_store import make_document
from tests.test_api import Api, doc, error_of, seed, start_api

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.backends
def test_tenant_prefixes_are_normalised_and_never_overlap(store):
    assert store.create_tenant("acme", prefix="/acme//eu/").prefix == "/acme/eu"
    store.create_tenant("default", prefix="/")
    for name, prefix in (("twin", "/acme/eu"), ("inner", "/acme/eu/x"), ("outer", "/acme"),
                         ("dots", "/a/../acme/eu"), ("dot", "/./b"), ("root2", "/"), ("rel", "acme")):
        with pytest.raises(ConfigError):
            store.create_tenant(name, prefix=prefix)
    store.create_tenant("beta", prefix="/beta")
    with pytest.raises(ConfigError, match="inside tenant 'acme'"):
        store.update_tenant("beta", prefix="/acme/eu/beta")
    # a tenant created on the fly may not land on another's prefix either
    with pytest.raises(ConfigError, match="acme"):
        store.save_document(make_document("evil", tenant="evil", prefix="/acme/eu/evil"))
    assert sorted(t.name for t in store.list_tenants()) == ["acme", "beta", "default"]


@pytest.mark.backends
def test_router_prefixes_stay_in_their_tenants_space(store):
    store.create_tenant("default", prefix="/")
    store.create_tenant("acme", prefix="/acme")
    for prefix in ("/acme/x", "/acme", "/default/../acme/x", "/default/./x"):
        with pytest.raises(ConfigError):
            store.save_document(make_document("sneaky", tenant="default", prefix=prefix))
    with pytest.raises(ConfigError, match=r"'\.\.'"):
        store.save_document(make_document("up", tenant="acme", prefix="/acme/../beta"))
    store.save_document(make_document("mine", tenant="default", prefix="/acmeish/x"))
    store.save_document(make_document("ok", tenant="acme", prefix="/acme//ok/"))
    assert store.get_document("acme", "ok").content["routers"][0]["prefix"] == "/acme/ok"
    # a new tenant cannot take a space the root tenant's documents already serve
    with pytest.raises(ConfigError, match="default/mine"):
        store.create_tenant("late", prefix="/acmeish")
    assert sorted((d.tenant, d.name) for d in store.list_documents()) == [("acme", "ok"), ("default", "mine")]


@pytest.mark.e2e  # starts the API process
def test_member_of_default_cannot_claim_another_tenants_space(tmp_path):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    store = seed(url)  # acme (/acme), globex (/globex); alice is a member of acme
    store.create_tenant("default", prefix="/")
    store.update_user("alice", tenants=["acme", "default"])
    base, proc = start_api(url, tmp_path)
    try:
        alice = Api(base, store, proc).login("alice")
        for prefix in ("/globex/sneaky", "/globex", "/default/../globex/sneaky"):
            content = doc("sneaky", "default")
            content["routers"][0]["prefix"] = prefix
            resp = alice.put("documents/default/sneaky", json=content)
            assert resp.status_code == 422, (prefix, resp.text)
            assert error_of(resp)["code"] == "invalid"
            resp = alice.post("documents/validate", json=content)
            assert resp.json()["valid"] is False, resp.text
        content = doc("fine", "default")
        content["routers"][0]["prefix"] = "/shared/fine"
        assert alice.put("documents/default/fine", json=content).status_code == 201
        admin = Api(base, store, proc).login("admin")
        assert admin.post("tenants", json={"name": "twin", "prefix": "/globex"}).status_code == 422
        assert admin.post("tenants", json={"name": "inner", "prefix": "/globex/inner"}).status_code == 422
        assert admin.post("tenants", json={"name": "dots", "prefix": "/x/../globex"}).status_code == 422
        assert admin.patch("tenants/acme", json={"prefix": "/globex/acme"}).status_code == 422
        assert [(d.tenant, d.name) for d in store.list_documents()] == [("default", "fine")]
        assert store.get_tenant("acme").prefix == "/acme"
    finally:
        proc.stop()
        store.close()


def test_the_auto_created_default_tenant_is_the_catch_all(sqlite_store):
    sqlite_store.save_document(make_document("demo-users", prefix="/gateway/demo"))
    assert sqlite_store.get_tenant("default").prefix == "/"
    # Unla's mock-user-svc serves at /default/...: refused when default's prefix was /gateway
    sqlite_store.save_document(unla.from_unla(yaml.safe_load((DATA / "unla-mock-user-svc.yaml").read_text())))
    sqlite_store.save_document(make_document("users", tenant="default"))
    sqlite_store.save_document(make_document("crm", tenant="acme", prefix="/acme-gw/crm"))
    assert sqlite_store.get_tenant("acme").prefix == "/acme-gw"  # other tenants keep the first-segment rule
