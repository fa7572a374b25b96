"""Config reloads: new tools appear within an interval, streams hear list_changed, broken documents and
database outages do not stop serving."""

from __future__ import annotations

import json
import sqlite3
import threading

import pytest
import requests

from tests.fixtures_gateway import DEMO_PREFIX, SseStream, demo_document
from tests.helpers import wait_for

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
NEW_TOOL = {"name": "count_users", "description": "How many users there are.", "method": "GET",
            "endpoint": "{{ config.baseUrl }}/users", "responseBody": "{{ response.data.count }}"}


def _rpc(method, params=None, id=1):
    return {"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}}


class StreamableSession:
    """A Streamable HTTP session spoken with requests."""

    def __init__(self, url):
        self.url = url
        resp = requests.post(url, json=_rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                           "clientInfo": {"name": "t", "version": "1"}}),
                             headers=ACCEPT, timeout=5)
        assert resp.status_code == 200, resp.text
        self.sid = resp.headers["Mcp-Session-Id"]
        self.ids = 1

    def call(self, method, params=None):
        self.ids += 1
        resp = requests.post(self.url, json=_rpc(method, params, self.ids),
                             headers={**ACCEPT, "Mcp-Session-Id": self.sid}, timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()["result"]

    def tool_names(self):
        return [t["name"] for t in self.call("tools/list")["tools"]]


def _with_tool(doc):
    doc = json.loads(json.dumps(doc))
    doc["tools"].append(NEW_TOOL)
    doc["servers"][0]["allowedTools"].append(NEW_TOOL["name"])
    return doc


def test_added_tool_is_listed_and_streams_hear_list_changed(seeded_store, start_gateway):
    store, url, backend = seeded_store
    gw = start_gateway(url, reload_interval=0.3)
    gw.wait_revision(store.revision())

    sse = SseStream(gw.sse_url())
    _, endpoint = sse.next()
    requests.post(gw.base + endpoint, json=_rpc("initialize", {"protocolVersion": "2024-11-05", "capabilities": {},
                                                              "clientInfo": {"name": "t", "version": "1"}}), timeout=5)
    assert json.loads(sse.next()[1])["result"]
    session = StreamableSession(gw.mcp_url())
    get_stream = SseStream(gw.mcp_url(), headers={"Mcp-Session-Id": session.sid})
    assert NEW_TOOL["name"] not in session.tool_names()
    try:
        store.save_document(_with_tool(demo_document(backend)))
        wait_for(lambda: NEW_TOOL["name"] in session.tool_names(), timeout=5, what="the new tool in tools/list")
        for stream in (sse, get_stream):
            event, data = stream.next(timeout=10)
            assert json.loads(data)["method"] == "notifications/tools/list_changed"
        result = session.call("tools/call", {"name": NEW_TOOL["name"], "arguments": {}})
        assert not result["isError"] and result["content"][0]["text"].strip().isdigit()
    finally:
        sse.close()
        get_stream.close()


def test_broken_document_keeps_its_last_good_version(seeded_store, start_gateway, tmp_path):
    store, url, backend = seeded_store
    store.save_document(demo_document(backend, name="other", prefix="/gateway/other"))
    gw = start_gateway(url, reload_interval=0.3)
    gw.wait_revision(store.revision())

    # A document that no longer validates can only arrive behind the store's back (or from an older writer).
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as db:
        db.execute("UPDATE document SET content = ? WHERE name = 'other'",
                   (json.dumps({"name": "other", "tenant": "default", "routers": [{"prefix": "/gateway/other"}],
                                "tools": [{"name": "bad name!"}]}),))
    store.save_document(_with_tool(demo_document(backend)))
    ready = gw.wait_revision(store.revision())
    assert "default/other" in ready["documents_with_errors"]
    assert NEW_TOOL["name"] in StreamableSession(gw.mcp_url()).tool_names()
    other = StreamableSession(gw.mcp_url("/gateway/other"))
    assert "get_user" in other.tool_names()


def _pg_or_skip(tmp_path):
    from tests.conftest import make_database

    return make_database("postgresql", tmp_path)


def test_database_outage_fails_no_tool_call(demo_backend, start_gateway, tmp_path):
    import psycopg2

    from tests.conftest import PG_ADMIN

    url, drop = _pg_or_skip(tmp_path)
    name = url.rsplit("/", 1)[1]
    admin = psycopg2.connect(PG_ADMIN, connect_timeout=3)
    admin.autocommit = True
    try:
        from mcpgw_sdk.opening import open_store

        store = open_store(url, check=False)
        store.upgrade()
        store.save_document(demo_document(demo_backend))
        revision = store.revision()
        store.close()
        gw = start_gateway(url, reload_interval=0.3)
        gw.wait_revision(revision)
        session = StreamableSession(gw.mcp_url())
        failures, calls, stop = [], [0], threading.Event()

        def caller():
            while not stop.is_set():
                try:
                    result = session.call("tools/call", {"name": "get_user", "arguments": {"email": "ada@example.com"}})
                    if result.get("isError"):
                        failures.append(result)
                except Exception as exc:  # noqa: BLE001 - every failure is recorded and asserted on
                    failures.append(repr(exc))
                calls[0] += 1

        thread = threading.Thread(target=caller, daemon=True)
        thread.start()
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
        down = wait_for(lambda: gw.readyz().get("last_poll_error"), timeout=15, what="the poll error on /readyz")
        assert down
        before = calls[0]
        wait_for(lambda: calls[0] > before + 20, timeout=15, what="tool calls while the database is down")
        assert requests.get(f"{gw.base}/readyz", timeout=5).status_code == 200
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_for(lambda: gw.readyz().get("last_poll_error") is None, timeout=20, what="recovery on /readyz")
        stop.set()
        thread.join(10)
        assert calls[0] > 20
        assert failures == []
        log = gw.proc.output()
        assert log.count("config store unreachable") == 1
    finally:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()
        drop()


@pytest.mark.parametrize("prefix", [DEMO_PREFIX])
def test_removed_router_stops_serving(seeded_store, start_gateway, prefix):
    store, url, _ = seeded_store
    gw = start_gateway(url, reload_interval=0.3)
    gw.wait_revision(store.revision())
    assert requests.post(gw.mcp_url(prefix), json=_rpc("ping"), timeout=5).status_code == 400  # no session
    store.delete_document("default", "demo-users")
    gw.wait_revision(store.revision())
    assert requests.post(gw.mcp_url(prefix), json=_rpc("ping"), timeout=5).status_code == 404


_ONE_STORE_THREAD = """
from gevent import monkey
monkey.patch_all()
import sys
import gevent
from gevent.pool import Group
from gateway_server.reloader import hub_safe
from mcpgw_sdk.sqlstore import SqlStore

native_ident = monkey.get_original("_thread", "get_ident")
store = SqlStore(sys.argv[1])
store.upgrade()
threads = set()

def revision():
    threads.add(native_ident())
    gevent.sleep(0)  # no effect in a native thread; the calls must still overlap in the caller
    return store.revision()

call = hub_safe(store, revision)
Group().map(lambda _: call(), range(40))
gevent.get_hub().threadpool.apply(lambda: None)  # other users of the hub's pool do not share our thread
print(len(threads), len(store.db._connections) + len(store.db._in_use), native_ident() in threads)
"""


def test_sqlite_reads_off_the_hub_use_one_long_lived_thread_and_connection(tmp_path):
    """Blocking SQLite calls run on one dedicated native thread: one pooled connection, whatever the load."""
    import subprocess

    from tests.helpers import python

    out = subprocess.run([python(), "-c", _ONE_STORE_THREAD, f"sqlite:///{tmp_path / 'one.db'}"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["1", "1", "False"], out.stdout
