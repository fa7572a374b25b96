"""Who may do what on the management API: every route needs a token; members never see other tenants."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from gateway_server.api import create_app
from gateway_server.api.app import PREFIX, PUBLIC_ENDPOINTS
from gateway_server.api.openapi import document
from mcpgw_sdk.records import AuditRecord
from tests.test_api import Api, doc, error_of, seed, start_api


def _routes():
    """(method, Flask rule, endpoint) of every API route, from the app's own routing table."""
    store = seed("sqlite:///:memory:")
    app = create_app(store=store, jwt_secret="x" * 32)
    routes = sorted((method, rule.rule, rule.endpoint) for rule in app.url_map.iter_rules()
                    if rule.rule.startswith(PREFIX) for method in rule.methods - {"HEAD", "OPTIONS"})
    store.close()
    return routes


ROUTES = _routes()


def _concrete(rule: str) -> str:
    """A request path for a Flask rule: ``<int:x>`` → 1, ``<x>`` → x."""
    path = re.sub(r"<int:[^>]+>", "1", rule)
    return re.sub(r"<[^>]+>", "x", path)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An API process with tenant globex's objects (documents, key, chat, audit) that alice (acme) must not see."""
    tmp = tmp_path_factory.mktemp("authz")
    url = f"sqlite:///{tmp / 'authz.db'}"
    store = seed(url)
    store.create_document(doc("gdoc", "globex"), author="admin")
    store.save_document(doc("gdoc", "globex", description="v2"), author="admin")
    store.create_document(doc("gdel", "globex"), author="admin")
    store.delete_document("globex", "gdel", author="admin")
    store.create_document(doc("adoc", "acme"), author="admin")
    key, _ = store.create_key("bob", "globex", name="bob-key")
    chat = store.create_chat("bob", title="bob's chat")
    store.add_chat_message(chat.id, "user", {"text": "secret"})
    store.write_audit([AuditRecord(ts=datetime.now(timezone.utc), tenant="globex", prefix="/globex/gdoc",
                                   server="gdoc", tool="get_user", outcome="ok", latency_ms=1.0, user="bob")])
    base, proc = start_api(url, tmp)
    api = Api(base, store, proc)
    api.ids = {"key": key.id, "chat": chat.id}
    yield api
    proc.stop()
    store.close()


def test_route_table_and_openapi_document_agree():
    documented = {(m.upper(), p) for p, item in document()["paths"].items() for m in item if m != "parameters"}
    served = {(m, re.sub(r"<(?:int:)?([^>]+)>", r"{\1}", r)[len(PREFIX):]) for m, r, _ in ROUTES}
    assert served == documented


@pytest.mark.parametrize("method,rule,endpoint", ROUTES, ids=[f"{m} {r}" for m, r, _ in ROUTES])
def test_every_route_needs_a_token(api, method, rule, endpoint):
    anon = api.anonymous()
    path = _concrete(rule)[len(PREFIX) + 1:]
    resp = anon.request(method, path, json={})
    if endpoint in PUBLIC_ENDPOINTS:  # reachable without a token: the empty body is refused on its merits
        assert resp.status_code == (200 if endpoint == "meta.openapi" else 422), resp.text
        return
    assert resp.status_code == 401, (method, path, resp.text)
    assert error_of(resp)["code"] == "unauthorized" and resp.headers["WWW-Authenticate"].startswith("Bearer")
    anon.headers["Authorization"] = "Bearer not-a-token"
    assert anon.request(method, path, json={}).status_code == 401


# Everything alice (member of acme) might try on tenant globex's objects: each must be 404.
OTHER_TENANT = [
    ("GET", "documents/globex/gdoc", None),
    ("PUT", "documents/globex/gdoc", doc("gdoc", "globex", description="hijacked")),
    ("DELETE", "documents/globex/gdoc", None),
    ("GET", "documents/globex/gdoc/versions", None),
    ("GET", "documents/globex/gdoc/versions/1", None),
    ("GET", "documents/globex/gdoc/diff?a=1&b=2", None),
    ("POST", "documents/globex/gdoc/rollback", {"version": 1}),
    ("GET", "documents/globex/gdel/versions", None),
    ("POST", "documents/globex/gdel/rollback", {"version": 1}),
    ("PUT", "documents/globex/new", doc("new", "globex")),
    ("GET", "documents?tenant=globex", None),
    ("POST", "documents", doc("sneaky", "globex")),
    ("POST", "documents/validate", doc("sneaky", "globex")),
    ("POST", "import", [doc("sneaky", "globex")]),
    ("POST", "import/openapi", {"spec": {"openapi": "3.0.0", "paths": {}}, "name": "x", "tenant": "globex"}),
    ("GET", "export?tenant=globex", None),
    ("GET", "export?tenant=globex&name=gdoc", None),
    ("GET", "tenants/globex", None),
    ("GET", "keys/{key}", None),
    ("POST", "keys/{key}/revoke", None),
    ("POST", "keys", {"tenant": "globex"}),
    ("GET", "keys?tenant=globex", None),
    ("GET", "keys?user=bob", None),
    ("GET", "chats/{chat}", None),
    ("PATCH", "chats/{chat}", {"title": "mine now"}),
    ("DELETE", "chats/{chat}", None),
    ("GET", "chats/{chat}/messages", None),
    ("POST", "chats/{chat}/messages", {"role": "user", "content": {"text": "hi"}}),
    ("GET", "audit?tenant=globex", None),
]


@pytest.mark.parametrize("method,path,body", OTHER_TENANT, ids=[f"{m} {p}" for m, p, _ in OTHER_TENANT])
def test_member_gets_404_for_other_tenants_objects(api, method, path, body):
    alice = api.login("alice")
    resp = alice.request(method, path.format(**api.ids), json=body)
    assert resp.status_code == 404, resp.text
    assert error_of(resp)["code"] == "not_found"


def test_other_tenants_objects_are_untouched_and_unlisted(api):
    store = api.store
    assert store.get_document("globex", "gdoc").version == 2
    assert store.get_document("globex", "gdel", include_deleted=True).deleted
    assert not store.get_key(api.ids["key"]).revoked
    assert store.get_chat(api.ids["chat"]).title == "bob's chat"
    alice = api.login("alice")
    assert {d["tenant"] for d in alice.get("documents").json()} == {"acme"}
    assert "globex" not in alice.get("export").text
    assert alice.get("audit").json() == []
    assert [t["name"] for t in alice.get("tenants").json()] == ["acme"]
    assert alice.get("keys").json() == [] and alice.get("chats").json() == []
    assert alice.get("status").json()["documents"] == 1


ADMIN_ONLY = [
    ("GET", "users", None),
    ("POST", "users", {"name": "mallory", "password": "mallory-pass"}),
    ("GET", "users/bob", None),
    ("PATCH", "users/alice", {"role": "admin"}),
    ("DELETE", "users/bob", None),
    ("POST", "tenants", {"name": "mine"}),
    ("PATCH", "tenants/acme", {"prefix": "/elsewhere"}),
    ("DELETE", "tenants/acme", None),
]


@pytest.mark.parametrize("method,path,body", ADMIN_ONLY, ids=[f"{m} {p}" for m, p, _ in ADMIN_ONLY])
def test_members_cannot_manage_users_or_tenants(api, method, path, body):
    resp = api.login("alice").request(method, path, json=body)
    assert resp.status_code == 403 and error_of(resp)["code"] == "forbidden"


def test_member_works_in_own_tenant(api):
    alice = api.login("alice")
    assert alice.get("documents/acme/adoc").status_code == 200
    assert alice.put("documents/acme/adoc", json=doc("adoc", "acme", description="mine")).status_code == 200
    assert alice.post("documents", json=doc("alices", "acme")).status_code == 201
    assert alice.get("export", params={"tenant": "acme"}).status_code == 200
    assert alice.get("tenants/acme").status_code == 200
