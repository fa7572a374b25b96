"""Stored documents that cannot be read (corrupt JSON, not a mapping, nested too deeply, not UTF-8) cost only
themselves: every store still loads, the gateway keeps the document's last good version or leaves it out and
names it on /readyz and in the log, and every other document reloads."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import requests

from gateway_server.snapshot import build_snapshot
from mcpgw_sdk.records import ConfigSet, Document
from mcpgw_sdk.yamlstore import YamlStore
from tests.fixtures_gateway import demo_document
from tests.fixtures_store import make_document
from tests.helpers import wait_for

ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
BROKEN_BODIES = {
    "not JSON": '{"name": "a", "tenant": "default", "routers": [',
    "a JSON list": "[1, 2]",
    "JSON null": "null",
    "nested too deeply": "[" * 100_000 + "]" * 100_000,
}


def _overwrite(store, name: str, body: str) -> None:
    """Write ``body`` into a document row behind the store's back, as a manual UPDATE or an old writer would."""
    p = store.db.param
    store.db.execute_sql(f"UPDATE document SET content = {p} WHERE name = {p}", (body, name))
    store.close()


def test_unreadable_rows_cost_only_their_document(store):
    store.save_document(make_document("a"))
    store.save_document(make_document("b"))
    for label, body in BROKEN_BODIES.items():
        _overwrite(store, "a", body)
        config = store.load_config()
        docs = {d.name: d for d in config.documents}
        assert docs["a"].problem and docs["a"].content == {}, label
        assert not docs["b"].problem and docs["b"].content["name"] == "b", label
    assert "not valid JSON" in _problem_of(store, BROKEN_BODIES["not JSON"])
    assert "JSON list, not a mapping" in _problem_of(store, "[1, 2]")
    assert "nested too deeply" in _problem_of(store, BROKEN_BODIES["nested too deeply"])


def _problem_of(store, body: str) -> str:
    _overwrite(store, "a", body)
    return next(d.problem for d in store.load_config().documents if d.name == "a")


def test_a_key_whose_scope_cannot_be_read_is_left_out(store):
    store.create_tenant("acme", prefix="/acme")
    store.create_user("ann", "a-long-password-1", role="admin")
    broken, _ = store.create_key("ann", "acme", servers=["users"])
    kept, _ = store.create_key("ann", "acme")
    p = store.db.param
    store.db.execute_sql(f"UPDATE api_key SET servers = {p} WHERE id = {p}", ('["users"', broken.id))
    store.close()
    assert [k.id for k in store.load_config().keys] == [kept.id]  # left out, not widened to every server


def test_sqlite_text_that_is_not_utf8_costs_only_its_document(sqlite_store):
    sqlite_store.save_document(make_document("a"))
    sqlite_store.save_document(make_document("b"))
    sqlite_store.db.execute_sql("UPDATE document SET content = CAST(X'7BFF22' AS TEXT) WHERE name = 'a'")
    sqlite_store.db.execute_sql("UPDATE document SET updated_at = 'yesterday' WHERE name = 'b'")
    docs = {d.name: d for d in sqlite_store.load_config().documents}
    assert "not UTF-8" in docs["a"].problem
    assert docs["b"].content["name"] == "b" and docs["b"].updated_at is None


def test_a_row_changed_behind_the_store_is_validated_again(store, monkeypatch):
    """The store marks what its validator accepted (``document.checked``) and the gateway does not validate a
    marked document again; a row changed directly keeps a mark that no longer matches, so it is validated,
    refused with the field named, and the last good version stays served."""
    from gateway_server import snapshot

    store.save_document(make_document("a"))
    store.save_document(make_document("b"))
    first = store.load_config()
    assert all(d.checked for d in first.documents)
    validated = []
    real = snapshot.validate
    monkeypatch.setattr(snapshot, "validate", lambda content: validated.append(content["name"]) or real(content))
    good = build_snapshot(first)
    assert validated == [] and not good.errors and "/default/a" in good.routes
    tampered = make_document("a")
    tampered["tools"][0]["method"] = "FETCH"  # valid JSON, not a valid document
    _overwrite(store, "a", json.dumps(tampered))
    config = store.load_config()
    docs = {d.name: d for d in config.documents}
    assert docs["a"].checked == "" and docs["b"].checked == first.documents[1].checked
    second = build_snapshot(config, good)
    assert validated == ["a"]
    assert any("tools[0].method" in problem and "FETCH" in problem for problem in second.errors["default/a"])
    assert second.routes["/default/a"] is good.routes["/default/a"]
    assert "default/b" not in second.errors


def test_a_changed_validator_validates_what_the_old_one_marked(store, monkeypatch):
    from mcpgw_sdk import documents

    store.save_document(make_document("a"))
    marked = store.load_config().documents[0]
    assert marked.checked and marked.checked == documents.validated_mark(store.db.execute_sql(
        "SELECT content FROM document").fetchone()[0])
    monkeypatch.setattr(documents, "validator_fingerprint", lambda: "another validator")
    assert store.load_config().documents[0].checked == ""
    monkeypatch.setattr(documents, "validator_fingerprint", lambda: "")  # its source cannot be read: trust nothing
    assert documents.validated_mark("{}") == ""
    assert store.load_config().documents[0].checked == ""


def test_validating_a_documents_own_validated_form_changes_nothing():
    """What the gateway skips for a marked document: validate() of validate()'s output returns it unchanged."""
    from mcpgw_sdk.documents import validate
    from mcpgw_sdk.openapi import from_openapi, parse_spec_text

    samples = [make_document("a"), demo_document("http://127.0.0.1:9")]
    data = Path(__file__).parent / "data"
    for i, spec in enumerate(("users-openapi30.json", "petstore-swagger2.yaml", "notes-openapi31.yaml")):
        samples.append(from_openapi(parse_spec_text((data / spec).read_text()), name=f"spec{i}"))
    for sample in samples:
        once = validate(sample)
        assert validate(once) == once
        assert json.dumps(validate(once)) == json.dumps(once)  # key order too: the stored text is the same


class _Exploding(dict):
    def items(self):
        raise RuntimeError("a bug in one document's validation")


def test_snapshot_keeps_the_last_good_version_of_any_broken_document():
    good = ConfigSet(1, (Document("default", "a", make_document("a"), 1),
                         Document("default", "b", make_document("b"), 1)), (), ())
    first = build_snapshot(good, make=_no_backend)
    assert set(first.routes) == {"/default/a", "/default/b"}
    broken = ConfigSet(2, (Document("default", "a", {}, 2, problem="stored content is not valid JSON (x)"),
                           Document("default", "b", _Exploding(make_document("b")), 2),
                           Document("default", "c", make_document("c"), 1)), (), ())
    second = build_snapshot(broken, first, make=_no_backend)
    assert set(second.routes) == {"/default/a", "/default/b", "/default/c"}  # a and b: their last good versions
    assert second.errors["default/a"] == ["default/a: stored content is not valid JSON (x)"]
    assert second.errors["default/b"] == ["default/b: RuntimeError: a bug in one document's validation"]
    fresh = build_snapshot(broken, make=_no_backend)  # nothing to fall back on: absent, and named
    assert set(fresh.routes) == {"/default/c"} and set(fresh.errors) == {"default/a", "default/b"}


class _NoBackend:
    def __init__(self, name, server, document, tools=()):
        self.name, self.tools = name, list(tools)

    def list_tools(self):
        return [{"name": t["name"], "inputSchema": {"type": "object"}} for t in self.tools]

    def close(self):
        pass


def _no_backend(kind, **kwargs):
    return _NoBackend(**kwargs)


def _tool_names(url: str) -> list[str]:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    resp = requests.post(url, json=init, headers=ACCEPT, timeout=5)
    assert resp.status_code == 200, resp.text
    listed = requests.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                           headers={**ACCEPT, "Mcp-Session-Id": resp.headers["Mcp-Session-Id"]}, timeout=5)
    return [t["name"] for t in listed.json()["result"]["tools"]]


def test_gateway_reloads_around_a_corrupt_row(seeded_store, start_gateway):
    store, url, backend = seeded_store
    store.save_document(demo_document(backend, name="other", prefix="/gateway/other"))
    gw = start_gateway(url, reload_interval=0.3)
    gw.wait_revision(store.revision())

    with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE document SET content = '{\"name\": \"other\", ' WHERE name = 'other'")
    edited = demo_document(backend)
    edited["tools"][0]["description"] = "Listed after the corrupt row."
    store.save_document(edited)
    ready = gw.wait_revision(store.revision())
    assert any("not valid JSON" in e for e in ready["documents_with_errors"]["default/other"])
    assert ready["last_poll_error"] is None
    assert "get_user" in _tool_names(gw.mcp_url("/gateway/other"))  # its last good version
    assert "list_users" in _tool_names(gw.mcp_url())
    wait_for(lambda: "document default/other not (re)loaded" in gw.proc.output(), timeout=5, what="the log line")

    fresh = start_gateway(url, reload_interval=0.3)  # never saw a good version: absent, named, the rest served
    ready = fresh.wait_revision(store.revision())
    assert "/gateway/other" not in ready["routes"] and "default/other" in ready["documents_with_errors"]
    assert "list_users" in _tool_names(fresh.mcp_url())


def test_yaml_store_survives_files_that_break(tmp_path):
    d = tmp_path / "configs"
    d.mkdir()
    (d / "a.yaml").write_text(json.dumps(make_document("a")))
    (d / "b.yaml").write_text(json.dumps(make_document("b")))
    store = YamlStore(f"yaml:///{d}")
    assert [doc.name for doc in store.load_config().documents] == ["a", "b"]
    (d / "b.yaml").write_text("name: b\nrouters: [\n")  # a syntax error: b keeps what it last gave
    (d / "c.yaml").write_text("name: [1, 2]\ntenant: {x: 1}\n")  # an identity that is not a string
    (d / "e.yaml").write_text(json.dumps({**make_document("e"), "routers": 5}))  # routers that are not a list
    config = store.load_config()
    assert {doc.name: doc.content["name"] for doc in config.documents} == {"a": "a", "b": "b", "e": "e"}
    assert any("serving its last good version" in e for e in store.errors)
    assert any("c.yaml" in e and "not a string" in e for e in store.errors)
    snapshot = build_snapshot(config, make=_no_backend)
    assert set(snapshot.routes) == {"/default/a", "/default/b"} and "default/e" in snapshot.errors
