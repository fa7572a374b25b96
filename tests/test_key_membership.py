"""API keys follow their owner's membership: a key whose owner left its tenant stops working at the next reload."""

from __future__ import annotations

import pytest
import requests

from mcpgw_sdk.client import McpClient
from mcpgw_sdk.errors import AuthError, Forbidden
from tests.fixtures_gateway import demo_document, run_backend, run_gateway
from tests.helpers import wait_for
from tests.test_api import seed as seed_api
from tests.test_api import start_api

PREFIX = "/acme/locked"
HELLO = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def _status(url: str, secret: str) -> int:
    return requests.post(url, json=HELLO, headers={**ACCEPT, "X-API-Key": secret}, timeout=10).status_code


def test_a_key_stops_working_when_its_owner_leaves_the_tenant(procs):
    url = f"sqlite:///{procs.log_dir / 'keys.db'}"
    store = seed_api(url)  # admin; tenants acme, globex; alice member of acme
    try:
        locked = demo_document(run_backend(procs), name="locked", prefix=PREFIX)
        locked["tenant"] = "acme"
        locked["routers"][0]["auth"] = {"mode": "apikey"}
        store.save_document(locked)
        base, api_proc = start_api(url, procs.log_dir)
        gw = run_gateway(procs, url, reload_interval=0.3, revision=store.revision())
        try:
            login = requests.post(base + "auth/login", json={"username": "alice", "password": "alice-pass-1"},
                                  timeout=10)
            alice = {"Authorization": f"Bearer {login.json()['access_token']}"}
            resp = requests.post(base + "keys", json={"tenant": "acme", "name": "alice-acme"}, headers=alice,
                                 timeout=10)
            assert resp.status_code == 201, resp.text
            secret = resp.json()["secret"]
            admin_secret = store.create_key("admin", "acme", name="admin-acme")[1]  # admins need no membership
            gw.wait_revision(store.revision())

            with McpClient(gw.mcp_url(PREFIX), headers={"X-API-Key": secret}, timeout=15) as client:
                assert client.call_tool("list_users", {}).get("isError") is not True

            login = requests.post(base + "auth/login", json={"username": "admin", "password": "admin-pass-1"},
                                  timeout=10)
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            resp = requests.patch(base + "users/alice", json={"tenants": []}, headers=admin, timeout=10)
            assert resp.status_code == 200 and resp.json()["tenants"] == [], resp.text

            wait_for(lambda: _status(gw.mcp_url(PREFIX), secret) == 401, timeout=15,
                     what="alice's key to be refused after she left acme")
            assert _status(gw.mcp_url(PREFIX), admin_secret) == 200
        finally:
            api_proc.stop()
    finally:
        store.close()


def test_loaded_keys_follow_membership_on_every_backend(store):
    store.create_tenant("acme")
    store.create_user("carol", "carol-pass-1", tenants=["acme"])
    store.create_user("root", "root-pass-12", role="admin")
    carol, carol_secret = store.create_key("carol", "acme")
    boss, _ = store.create_key("root", "acme")  # admins hold keys on any tenant without membership

    def live() -> set[int]:
        return {k.id for k in store.load_config().keys}

    assert live() == {carol.id, boss.id}
    revision = store.revision()
    store.update_user("carol", tenants=[])
    assert store.revision() > revision  # the gateways reload, and drop the key
    assert live() == {boss.id}
    with pytest.raises(AuthError, match="no longer a member"):
        store.verify_key(carol_secret)
    store.update_user("root", role="member")
    assert live() == set()
    store.update_user("carol", tenants=["acme"])  # membership back: the (unrevoked) key with it
    assert live() == {carol.id}


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
