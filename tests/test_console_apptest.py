"""The console's pages through Streamlit's AppTest, on a real SQLite store, plus the plain logic beneath them.

The LLM client runs against the fake OpenAI server (a real HTTP server speaking
the real wire format); the MCP client against a real gateway subprocess.
"""

from __future__ import annotations

import json
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from streamlit.testing.v1 import AppTest

from console import chat, editing, importing, llm, schema_form, servers, usage
from console.mcp_tools import GatewayTools, McpCallError
from mcpgw_sdk import open_store
from mcpgw_sdk.records import AuditRecord
from tests.fixtures.fake_openai import make_server
from tests.fixtures_gateway import run_backend
from tests.fixtures_store import seed_console_users
from tests.helpers import free_port, wait_for, wait_http

APP = Path(__file__).resolve().parent.parent / "console" / "app.py"
PW = {"admin": "admin-pass-1", "bob": "bob-pass-12", "eve": "eve-pass-12"}


def users_doc(base: str = "http://127.0.0.1:9", *, tenant: str = "acme", name: str = "users",
              prefix: str = "/acme/users") -> dict:
    """A small valid document: one REST tool with one path argument."""
    return {"name": name, "tenant": tenant, "routers": [{"prefix": prefix, "server": "users"}],
            "servers": [{"name": "users", "allowedTools": ["get_user"], "config": {"base": base}}],
            "tools": [{"name": "get_user", "description": "Get one user", "method": "GET",
                       "endpoint": "{{ config.base }}/users/{{ args.email }}",
                       "args": [{"name": "email", "position": "path", "required": True, "type": "string"}]}]}


@pytest.fixture
def store(sqlite_url, monkeypatch):
    """A migrated SQLite store with tenants acme and beta, admin, bob (acme) and eve (beta)."""
    monkeypatch.setenv("MCPGW_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("MCPGW_GATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    s = open_store(sqlite_url, check=False)
    s.upgrade()
    seed_console_users(s, PW)
    s.save_document(users_doc(), author="admin")
    s.save_document(users_doc(tenant="beta", name="secret", prefix="/beta/secret"), author="admin")
    yield s
    s.close()


def app_as(store, name: str | None, page: str | None = None) -> AppTest:
    """The console signed in as ``name`` (None: signed out), on ``pages/<page>.py``."""
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    if name:
        at.session_state["user"] = store.get_user(name)
        at.run()
    if page:
        at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


# -- login ------------------------------------------------------------------------
def test_login_rejects_wrong_password_then_signs_in(store):
    at = app_as(store, None)
    at.text_input(key="login_name").input("bob")
    at.text_input(key="login_password").input("wrong")
    at.button[0].click().run()
    assert texts(at.error) == ["Unknown user or wrong password."]
    assert "user" not in at.session_state
    at.text_input(key="login_password").input(PW["bob"])
    at.button[0].click().run()
    assert at.session_state["user"].name == "bob"
    assert any("Signed in as **bob**" in m.value for m in at.sidebar.markdown)
    assert at.button(key="sign_out").label == "Sign out"  # signing out is driven in test_console_browser.py


def test_member_sees_only_their_tenants(store):
    at = app_as(store, "bob", "servers")
    assert [h.value for h in at.subheader] == ["/acme/users"]
    at.switch_page("pages/versions.py").run()
    assert at.selectbox(key="ve_doc").options == ["acme/users"]
    admin = app_as(store, "admin", "servers")
    assert [h.value for h in admin.subheader] == ["/acme/users", "/beta/secret"]


def test_servers_page_shows_endpoints_and_client_configs(store):
    at = app_as(store, "admin", "servers")
    codes = texts(at.code)
    gateway = store and __import__("os").environ["MCPGW_GATEWAY_URL"]
    assert f"{gateway}/acme/users/mcp" in codes and f"{gateway}/acme/users/sse" in codes
    cursor = json.loads(next(c for c in codes if '"url"' in c and '"mcpServers"' in c))
    assert cursor == {"mcpServers": {"acme-users": {"url": f"{gateway}/acme/users/mcp"}}}
    assert any("mcp.Client(" in c for c in codes)
    assert any("does not answer" in w.value for w in at.warning)


def test_servers_page_toggle_disables_and_enables_an_endpoint_as_new_versions(store):
    at = app_as(store, "bob", "servers")
    assert [t.key for t in at.toggle] == ["sv_on_/acme/users_1"]  # bob's tenant only
    at.toggle(key="sv_on_/acme/users_1").set_value(False).run()
    assert not at.exception, [e.value for e in at.exception]
    doc = store.get_document("acme", "users")
    assert (doc.version, doc.updated_by, doc.content["routers"][0]["disabled"]) == (2, "bob", True)
    assert any("version 2" in m and "disabled" in m for m in texts(at.success)), texts(at.success)
    assert at.toggle(key="sv_on_/acme/users_2").value is False
    assert any("state: disabled" in c for c in texts(at.caption)), texts(at.caption)
    at.toggle(key="sv_on_/acme/users_2").set_value(True).run()
    doc = store.get_document("acme", "users")
    assert doc.version == 3 and "disabled" not in doc.content["routers"][0]
    assert [v.version for v in store.list_versions("acme", "users")][:3] == [3, 2, 1]


def test_servers_page_toggle_after_a_concurrent_edit_shows_the_conflict(store):
    at = app_as(store, "admin", "servers")
    other = users_doc()
    other["tools"][0]["description"] = "changed elsewhere"
    store.save_document(other, author="bob", base_version=1)
    at.toggle(key="sv_on_/acme/users_1").set_value(False).run()
    assert any("changed this document meanwhile" in w and "now 2" in w for w in texts(at.warning)), texts(at.warning)
    doc = store.get_document("acme", "users")
    assert doc.version == 2 and "disabled" not in doc.content["routers"][0]
    assert at.toggle(key="sv_on_/acme/users_2").value is True


def test_member_cannot_toggle_another_tenants_endpoint(store):
    item = next(i for i in servers.served_prefixes(store.list_documents()) if i.tenant == "beta")
    outcome = servers.set_disabled(store, store.get_user("bob"), item, disabled=True)
    assert not outcome.ok and "not a member of tenant 'beta'" in str(outcome.errors[0])
    assert "disabled" not in store.get_document("beta", "secret").content["routers"][0]
    assert servers.set_disabled(store, store.get_user("eve"), item, disabled=True).ok


# -- editor -------------------------------------------------------------------------
def ed_key(at: AppTest, name: str) -> str:
    """An editor widget's key: it carries the loaded document and version (``editing.form_key``)."""
    return at.session_state["ed_keys"] + name


def open_in_editor(at: AppTest, ident: str, mode: str = "Form") -> AppTest:
    at.selectbox(key="ed_pick").select(ident).run()
    if mode != "Form":
        at.radio(key="ed_mode").set_value(mode).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_editor_yaml_mode_reports_parse_and_validation_errors_and_saves_nothing(store):
    at = open_in_editor(app_as(store, "admin", "editor"), "acme/users", "YAML")
    before = store.get_document("acme", "users").version
    at.text_area(key=ed_key(at, "yaml")).input("name: users\ntenant: acme\nrouters: [\n").run()
    assert any("does not parse" in e and "line" in e for e in texts(at.error))
    at.button(key="ed_save").click().run()
    assert any("Not saved: the YAML does not parse" in e for e in texts(at.error))
    bad = users_doc()
    bad["tools"][0]["args"][0]["position"] = "bdy"
    at.text_area(key=ed_key(at, "yaml")).input(editing.to_yaml(bad)).run()
    at.button(key="ed_save").click().run()
    errors = texts(at.error)
    assert any("tools[0].args[0].position" in e and "bdy" in e for e in errors), errors
    assert store.get_document("acme", "users").version == before


def test_editor_form_shows_template_error_inside_its_tool(store):
    at = open_in_editor(app_as(store, "admin", "editor"), "acme/users")
    at.text_input(key=ed_key(at, "tool0_endpoint")).input("{{ config.base }}/users/{{ args.email ").run()
    at.button(key="ed_save").click().run()
    tool_box = next(e for e in at.expander if e.label.startswith("Tool get_user"))
    assert any("tools[0].endpoint" in e.value and "template" in e.value for e in tool_box.error), \
        texts(at.error)
    assert any("Not saved" in e for e in texts(at.error))
    assert store.get_document("acme", "users").content["tools"][0]["endpoint"].endswith("{{ args.email }}")


def test_editor_form_adds_an_argument_and_saves_a_version(store):
    at = open_in_editor(app_as(store, "bob", "editor"), "acme/users")
    at.text_input(key=ed_key(at, "arg0_name")).input("verbose")
    at.selectbox(key=ed_key(at, "arg0_type")).select("boolean")
    at.text_input(key=ed_key(at, "arg0_desc")).input("More detail")
    add = next(b for b in at.button if b.label == "Add argument")
    add.click().run()
    assert not at.exception
    at.button(key="ed_save").click().run()
    doc = store.get_document("acme", "users")
    assert doc.version == 2 and doc.updated_by == "bob"
    arg = doc.content["tools"][0]["args"][1]
    assert (arg["name"], arg["position"], arg["type"], arg["description"]) == ("verbose", "query", "boolean",
                                                                              "More detail")
    assert any("Saved acme/users as version 2" in s for s in texts(at.success))


def test_editor_concurrent_edit_shows_conflict_and_reloads(store):
    at = open_in_editor(app_as(store, "admin", "editor"), "acme/users")
    other = users_doc()
    other["tools"][0]["description"] = "changed elsewhere"
    store.save_document(other, author="bob", base_version=1)
    at.text_input(key=ed_key(at, "tool0_desc")).input("my change").run()
    at.button(key="ed_save").click().run()
    assert any("changed this document" in w for w in texts(at.warning)), texts(at.warning)
    assert store.get_document("acme", "users").content["tools"][0]["description"] == "changed elsewhere"
    at.button(key="ed_reload").click().run()
    assert at.session_state["ed_base"] == 2
    assert at.text_input(key=ed_key(at, "tool0_desc")).value == "changed elsewhere"


def test_editor_refuses_a_prefix_another_document_serves(store):
    at = app_as(store, "admin", "editor")
    at.selectbox(key="ed_new_tenant").select("acme")
    at.text_input(key="ed_new_name").input("clash")
    at.text_input(key="ed_new_prefix").input("/acme/users")
    next(b for b in at.button if b.label == "Start editing").click().run()
    at.button(key="ed_save").click().run()
    assert any("routers[0].prefix" in e and "also used by acme/users" in e for e in texts(at.error)), texts(at.error)
    assert [d.name for d in store.list_documents(tenant="acme")] == ["users"]


# -- import -----------------------------------------------------------------------
def test_import_previews_tools_then_saves(store):
    at = app_as(store, "bob", "importer")
    at.radio(key="im_source").set_value("Paste text").run()
    doc = users_doc(name="people", prefix="/acme/people")
    at.text_area(key="im_text").input(editing.to_yaml(doc)).run()
    assert not at.exception
    preview = at.table[0].value
    assert list(preview["tool"]) == ["get_user"] and preview["method"][0] == "GET"
    assert any("Preview: 1 tool" in h.value for h in at.subheader)
    at.button(key="im_save").click().run()
    assert store.get_document("acme", "people").content["routers"][0]["prefix"] == "/acme/people"
    assert any("Saved acme/people as version 1" in s for s in texts(at.success))


def test_import_names_the_document_from_the_spec_and_shows_no_error_before_input(store, tmp_path):
    at = app_as(store, "admin", "importer")
    assert not at.error and not at.warning  # nothing chosen yet: nothing to complain about
    at.radio(key="im_source").set_value("Paste text").run()
    assert not at.error
    spec = {"openapi": "3.0.3", "info": {"title": "Swagger Petstore", "version": "1"},
            "servers": [{"url": "http://127.0.0.1:9"}],
            "paths": {"/pets": {"get": {"operationId": "listPets"}}}}
    at.text_area(key="im_text").input(json.dumps(spec)).run()
    assert at.text_input(key="im_name").value == "swagger-petstore" and not at.error
    assert list(at.table[0].value["tool"]) == ["listPets"]
    at.text_input(key="im_name").input("pets").run()  # the user's name stays while the text does not change
    assert at.text_input(key="im_name").value == "pets"
    untitled = dict(spec, info={"version": "1"})
    at.text_area(key="im_text").input(json.dumps(untitled)).run()
    assert at.text_input(key="im_name").value == "" and not at.error
    assert any("Give the document a name" in i.value for i in at.info)
    assert importing.suggest_name(untitled, "upload/people.json") == "people"


def test_import_shows_unparseable_text_and_invalid_documents(store):
    at = app_as(store, "admin", "importer")
    at.radio(key="im_source").set_value("Paste text").run()
    at.text_area(key="im_text").input("name: [unclosed\n").run()
    assert any("Cannot read" in e and "line" in e for e in texts(at.error))
    bad = users_doc(name="broken", prefix="/acme/broken")
    bad["tools"][0]["method"] = "FETCH"
    at.text_area(key="im_text").input(editing.to_yaml(bad)).run()
    assert any("tools[0].method" in e for e in texts(at.error)), texts(at.error)
    assert at.button(key="im_save").disabled


def test_import_openapi_spec_preview(store):
    pytest.importorskip("mcpgw_sdk.openapi")
    spec = {"openapi": "3.0.3", "info": {"title": "Pets", "version": "1"},
            "servers": [{"url": "http://127.0.0.1:9"}],
            "paths": {"/pets/{id}": {"get": {"operationId": "getPet", "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}]}}}}
    at = app_as(store, "admin", "importer")
    at.radio(key="im_source").set_value("Paste text").run()
    at.text_area(key="im_text").input(json.dumps(spec)).run()
    at.text_input(key="im_name").input("pets").run()
    assert any("OpenAPI" in c.value for c in at.caption)
    assert list(at.table[0].value["tool"]) == ["getPet"]
    at.button(key="im_save").click().run()
    assert store.get_document("acme", "pets").content["tools"][0]["name"] == "getPet"


# -- versions ---------------------------------------------------------------------
def test_versions_diff_and_rollback_of_a_deleted_document(store):
    changed = users_doc()
    changed["tools"][0]["description"] = "Version two"
    store.save_document(changed, author="admin", base_version=1)
    store.delete_document("acme", "users", author="admin")
    at = app_as(store, "admin", "versions")
    at.selectbox(key="ve_doc").select("acme/users (deleted)").run()
    at.selectbox(key="ve_a:acme/users").select(1)
    at.selectbox(key="ve_b:acme/users").select(2).run()
    diff = at.code[0].value  # the diff comes first, the full versions after it, folded
    assert any(line.startswith("-") and "Get one user" in line for line in diff.splitlines()), diff
    assert any(line.startswith("+") and "Version two" in line for line in diff.splitlines()), diff
    # A deleted document: the version to restore is preselected as its last content, version 2.
    assert at.selectbox(key="ve_target:acme/users").value == 2
    at.button(key="ve_rollback").click().run()
    assert store.get_document("acme", "users", include_deleted=True).deleted  # asked first, nothing written
    at.button(key="ve_yes").click().run()
    doc = store.get_document("acme", "users")
    assert not doc.deleted and doc.content["tools"][0]["description"] == "Version two"
    assert store.list_versions("acme", "users")[0].action == "revert"


def test_versions_page_shows_the_diff_first_and_confirms_rollback_and_delete(store):
    changed = users_doc()
    changed["tools"][0]["description"] = "Version two"
    store.save_document(changed, author="admin", base_version=1)
    at = app_as(store, "admin", "versions")
    # The diff of the previous and the latest version is the first code block; both in full are folded.
    assert at.markdown[0].value == "**Changes from version 1 to version 2**"
    assert "+" in at.code[0].value and "Version two" in at.code[0].value
    assert [e.label for e in at.expander] == ["Versions 1 and 2 in full"]
    history = at.dataframe[0].value
    assert list(history["reverted from"]) == ["", ""] and "None" not in history.to_string()
    assert at.selectbox(key="ve_target:acme/users").options == ["1"]  # the previous version, preselected
    # Rollback asks first; Cancel writes nothing.
    at.button(key="ve_rollback").click().run()
    assert any("Restore version 1 of acme/users?" in w for w in texts(at.warning)), texts(at.warning)
    at.button(key="ve_cancel").click().run()
    assert store.get_document("acme", "users").version == 2 and not at.warning
    # Delete asks too; Yes deletes and the page shows the deleted document, restorable.
    at.button(key="ve_delete").click().run()
    assert store.get_document("acme", "users").version == 2
    assert any("Delete acme/users?" in w for w in texts(at.warning))
    at.button(key="ve_yes").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert store.get_document("acme", "users", include_deleted=True).deleted
    assert any("Deleted acme/users (version 3)" in m for m in texts(at.success)), texts(at.success)
    assert at.selectbox(key="ve_doc").value == "acme/users (deleted)"


# -- keys and users ------------------------------------------------------------------
def test_member_creates_a_key_whose_secret_is_shown_once_and_revokes_it(store):
    store.create_key("eve", "beta", name="eve-key")
    at = app_as(store, "bob", "users")
    assert at.title[0].value == "API keys"
    assert "eve-key" not in list(at.dataframe[0].value["name"])
    at.text_input(key="us_key_name").input("laptop")
    next(b for b in at.button if b.label == "Create key").click().run()
    keys = store.list_keys(user="bob")
    assert [k.name for k in keys] == ["laptop"]
    secret = at.code[0].value
    assert store.verify_key(secret).id == keys[0].id
    at.run()
    assert secret not in texts(at.code)
    at.button(key="us_revoke").click().run()
    assert store.get_key(keys[0].id).revoked


def test_key_restricted_to_servers_and_tools_with_an_expiry(store):
    at = app_as(store, "bob", "users")
    assert at.multiselect(key="us_key_servers").options == ["users"]  # the tenant's servers and tools
    assert at.multiselect(key="us_key_tools").options == ["get_user"]
    at.text_input(key="us_key_name").input("ci")
    at.multiselect(key="us_key_servers").select("users")
    at.multiselect(key="us_key_tools").select("get_user")
    at.selectbox(key="us_key_expiry").select("30 days")
    next(b for b in at.button if b.label == "Create key").click().run()
    assert not at.exception, [e.value for e in at.exception]
    key = store.list_keys(user="bob")[0]
    assert (key.name, key.servers, key.tools) == ("ci", ("users",), ("get_user",))
    days = (key.expires_at.replace(tzinfo=None) - datetime.now(timezone.utc).replace(tzinfo=None)).days
    assert 29 <= days <= 30
    assert any("servers: users · tools: get_user" in m and "expires" in m for m in texts(at.success))
    table = at.dataframe[0].value
    assert table["restricted to"][0] == "servers: users · tools: get_user"
    assert table["last used"][0] == ""  # an empty cell, not None


def test_admin_adds_a_tenant_and_a_member(store):
    at = app_as(store, "admin", "users")
    at.text_input(key="us_tenant_name").input("gamma")
    next(b for b in at.button if b.label == "Add tenant").click().run()
    assert store.get_tenant("gamma").prefix == "/gamma"
    at.text_input(key="us_add_name").input("carol")
    at.text_input(key="us_add_password").input("carol-pass-1")
    at.multiselect(key="us_add_tenants").select("gamma")
    next(b for b in at.button if b.label == "Add user").click().run()
    carol = store.authenticate("carol", "carol-pass-1")
    assert carol.role == "member" and carol.tenants == ("gamma",)


# -- usage ---------------------------------------------------------------------------
def seed_audit(store, now):
    records = []
    for i in range(20):
        records.append(AuditRecord(ts=now - timedelta(minutes=i), tenant="acme", prefix="/acme/users",
                                   server="users", tool="get_user", outcome="ok", latency_ms=10.0 + i))
    records.append(AuditRecord(ts=now - timedelta(minutes=3), tenant="acme", prefix="/acme/users", server="users",
                               tool="get_user", outcome="error", latency_ms=900.0, error="HTTP 502"))
    records.append(AuditRecord(ts=now - timedelta(minutes=5), tenant="beta", prefix="/beta/secret",
                               server="users", tool="get_user", outcome="timeout", latency_ms=30000.0,
                               error="timed out"))
    store.write_audit(records)


def test_usage_figures_from_seeded_audit_records(store):
    now = datetime.now(timezone.utc)
    seed_audit(store, now)
    df = usage.load(store, since=now - timedelta(hours=1))
    stats = usage.per_tool(df).set_index("prefix")
    assert stats.loc["/acme/users", "calls"] == 21 and stats.loc["/acme/users", "errors"] == 1
    assert stats.loc["/acme/users", "p50_ms"] == pytest.approx(20.0)
    assert usage.summary(df)["error_rate"] == pytest.approx(2 / 22)
    assert usage.over_time(df, "1min")["calls"].sum() == 22
    assert usage.slowest(df, 1)["latency_ms"][0] == 30000.0

    at = app_as(store, "bob", "usage")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Tool calls"] == "21" and metrics["Error rate"] == "4.8%"
    failing = at.dataframe[-1].value
    assert list(failing["error"]) == ["HTTP 502"]


# -- LLM client and chat loop against the fake OpenAI server -------------------------
@pytest.fixture
def fake_openai():
    server = make_server(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_llm_streams_text_and_assembles_streamed_tool_calls(fake_openai):
    client = llm.ChatClient(base_url=fake_openai, model="fake-model")
    events = list(client.stream([{"role": "user", "content": "hello there"}]))
    assert "".join(e.text for e in events if e.type == "text") == "Echo: hello there"
    assert len([e for e in events if e.type == "text"]) > 1
    tools = chat.openai_tools([{"name": "get_user", "inputSchema": {"type": "object"}}])
    reply = client.complete([{"role": "user", "content": 'get_user {"email": "ada@example.com"}'}], tools=tools)
    assert reply.finish_reason == "tool_calls"
    assert [(c.name, c.parsed_arguments()) for c in reply.tool_calls] == [("get_user", {"email": "ada@example.com"})]


def test_llm_error_is_readable(fake_openai):
    client = llm.ChatClient(base_url=fake_openai, model="fake-model")
    with pytest.raises(llm.LlmError, match="HTTP 500: The server had an error") as info:
        client.complete([{"role": "user", "content": "[fail] please"}])
    assert info.value.status == 500
    with pytest.raises(llm.LlmError, match="cannot reach the model provider"):
        llm.ChatClient(base_url=f"http://127.0.0.1:{free_port()}/v1", model="m").complete([])


class RecordingTools:
    def __init__(self):
        self.calls = []

    def call_tool(self, name, arguments=None):
        from console.mcp_tools import ToolResult

        self.calls.append((name, arguments))
        return ToolResult(result={"content": [{"type": "text", "text": "Ada Lovelace"}]}, latency_ms=3.2)


def test_chat_turn_calls_the_tool_and_answers_with_its_result(fake_openai):
    client = llm.ChatClient(base_url=fake_openai, model="fake-model")
    tools = RecordingTools()
    seen = []
    new = chat.run_turn(client, tools, [{"role": "user", "content": 'who is {"email": "ada@example.com"}'}],
                        tool_specs=chat.openai_tools([{"name": "get_user", "inputSchema": {"type": "object"}}]),
                        on_message=seen.append)
    assert tools.calls == [("get_user", {"email": "ada@example.com"})]
    assert [m["role"] for m in new] == ["assistant", "tool", "assistant"]
    assert new[1]["_latency_ms"] == 3.2 and new[1]["content"] == "Ada Lovelace"
    assert new[-1]["content"] == "Tool result: Ada Lovelace"
    assert seen == new
    assert all(not k.startswith("_") for m in chat.for_model(new) for k in m)


# -- tool runner form ------------------------------------------------------------------
def test_schema_form_converts_and_names_bad_fields():
    form = schema_form.fields({"type": "object", "required": ["email", "limit"], "properties": {
        "email": {"type": "string"}, "limit": {"type": "integer"}, "tags": {"type": "array"},
        "mode": {"enum": ["a", "b"]}, "flag": {"type": "boolean"}}})
    assert [f.name for f in form[:2]] == ["email", "limit"]
    assert {f.name: f.widget for f in form} == {"email": "text", "limit": "text", "tags": "json",
                                                "mode": "select", "flag": "select"}
    ok = schema_form.arguments(form, {"email": "a@b.c", "limit": "5", "tags": '["x"]', "mode": "b", "flag": ""})
    assert ok.arguments == {"email": "a@b.c", "limit": 5, "tags": ["x"], "mode": "b"} and not ok.errors
    bad = schema_form.arguments(form, {"email": "", "limit": "five", "tags": "{}"})
    assert bad.errors == {"email": "required", "limit": "'five' is not an integer", "tags": "must be a JSON array"}


@pytest.fixture
def gateway(store, sqlite_url, procs, monkeypatch):
    """The demo REST backend and a real gateway serving ``acme/users`` from the test store."""
    gateway_port = free_port()
    store.save_document(users_doc(run_backend(procs)), author="admin", base_version=1)
    url = f"http://127.0.0.1:{gateway_port}"
    procs.start([str(Path(sys.executable).parent / "mcpgw"), "serve", "--db", sqlite_url,
                 "--port", str(gateway_port), "--reload-interval", "0.3"], name="gateway")
    wait_http(f"{url}/readyz", timeout=30, status=200)
    monkeypatch.setenv("MCPGW_GATEWAY_URL", url)
    return url


def test_tool_runner_form_calls_the_tool_through_the_gateway(store, gateway):
    at = app_as(store, "bob", "tools")
    assert at.selectbox(key="tr_tool").options == ["get_user"]
    at.button[-1].click().run()  # submit with the required field empty
    assert any("email: required" in e for e in texts(at.error))
    at.text_input(key="tr_arg_/acme/users_get_user_email").input("ada@example.com")
    at.button[-1].click().run()
    assert not at.exception
    result = next(c.value for c in at.code if "Ada Lovelace" in c.value)
    assert json.loads(result)["email"] == "ada@example.com"
    assert any(c.value.endswith(" ms") for c in at.caption)


def test_gateway_tools_client_lists_calls_and_reports_unknown_tools(store, gateway):
    with GatewayTools(f"{gateway}/acme/users/mcp") as client:
        assert [t["name"] for t in client.list_tools()] == ["get_user"]
        result = client.call_tool("get_user", {"email": "nobody@example.com"})
        assert result.is_error and "404" in result.text
        with pytest.raises(McpCallError, match="tools/call"):
            client.call_tool("no_such_tool", {})
    wait_for(lambda: servers.fetch_readyz(gateway)["ready"], what="readyz")


def test_client_configs_are_right_for_each_client():
    plain = servers.client_configs("http://gw:5235", "/acme/users")
    claude = json.loads(plain["Claude Desktop (claude_desktop_config.json)"][1])
    assert claude == {"mcpServers": {"acme-users": {"command": "npx", "args": [
        "-y", "mcp-remote", "http://gw:5235/acme/users/mcp"]}}}  # Claude Desktop starts local servers only
    keyed = servers.client_configs("http://gw:5235", "/acme/users", auth="apikey")
    claude = json.loads(keyed["Claude Desktop (claude_desktop_config.json)"][1])["mcpServers"]["acme-users"]
    assert claude["args"][-2:] == ["--header", "Authorization:${MCPGW_AUTH}"]
    assert claude["env"] == {"MCPGW_AUTH": f"Bearer {servers.KEY_PLACEHOLDER}"}
    cursor = json.loads(keyed["Cursor (.cursor/mcp.json)"][1])["mcpServers"]["acme-users"]
    assert cursor == {"url": "http://gw:5235/acme/users/mcp",
                      "headers": {"Authorization": f"Bearer {servers.KEY_PLACEHOLDER}"}}
    compile(keyed["Python (mcp)"][1], "snippet", "exec")
    compile(plain["Python (mcp)"][1], "snippet", "exec")


def test_servers_page_links_only_to_what_answers(store, gateway):
    at = app_as(store, "admin", "servers")
    caption = at.caption[0].value
    assert f"[status]({gateway}/readyz)" in caption and f"`{gateway}`" in caption
    assert requests.get(f"{gateway}/readyz", timeout=5).status_code == 200


def test_console_on_a_missing_database_shows_the_command_and_creates_nothing(tmp_path, monkeypatch):
    missing = tmp_path / "nothing-here.db"
    monkeypatch.setenv("MCPGW_DATABASE_URL", f"sqlite:///{missing}")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("There is no database at" in e for e in texts(at.error)), texts(at.error)
    assert texts(at.code) == [f"mcpgw db upgrade --db sqlite:///{missing}"]
    assert not at.text_input and not at.button  # no sign-in form, nothing else to do
    assert not missing.exists()


def test_console_on_a_database_behind_shows_only_the_upgrade_command(tmp_path, monkeypatch):
    import sqlite3

    old = tmp_path / "old.db"
    sqlite3.connect(old).execute("CREATE TABLE unrelated (x)").connection.close()
    monkeypatch.setenv("MCPGW_DATABASE_URL", f"sqlite:///{old}")
    at = AppTest.from_file(str(APP), default_timeout=30).run()
    assert not at.exception, [e.value for e in at.exception]
    assert texts(at.error) == ["The database needs an upgrade before the console can use it."]
    assert texts(at.code) == [f"mcpgw db upgrade --db sqlite:///{old}"]
    assert not at.text_input and not at.sidebar.markdown


def test_client_configs_and_readyz_state():
    configs = servers.client_configs("http://gw:5235", "/acme/users")
    assert json.loads(configs["VS Code (.vscode/mcp.json)"][1]) == {
        "servers": {"acme-users": {"type": "http", "url": "http://gw:5235/acme/users/mcp"}}}
    readyz = {"reachable": True, "ready": True, "routes": ["/acme/users"],
              "documents_with_errors": {"acme/users": ["acme/users: tools[0].endpoint: bad"]}}
    assert servers.state_of(readyz, "acme", "users", "/acme/users").startswith("error")
    assert servers.state_of(readyz, "acme", "other", "/acme/other").startswith("not served")
    assert servers.state_of(readyz, "acme", "users", "/acme/users", disabled=True).startswith("disabled (")
    assert servers.state_of({"reachable": False}, "acme", "users", "/acme/users", disabled=True) == "disabled"
    assert importing.tool_rows(users_doc())[0]["arguments"] == "email* (path)"


# -- chat lab page ----------------------------------------------------------------------
def test_chat_history_is_listed_resumed_renamed_and_deleted(store):
    first = store.create_chat("bob", title="About Ada", prefix="/acme/users",
                              settings={"base_url": "http://127.0.0.1:9/v1", "model": "m", "system_prompt": "Be brief"})
    store.add_chat_message(first.id, "user", {"role": "user", "content": "who is ada?"})
    store.add_chat_message(first.id, "tool", {"role": "tool", "tool_call_id": "c1", "content": "Ada Lovelace",
                                              "_name": "get_user", "_arguments": {"email": "ada@example.com"},
                                              "_latency_ms": 12.5, "_is_error": False})
    store.add_chat_message(first.id, "assistant", {"role": "assistant", "content": "Ada Lovelace, a mathematician."})
    store.create_chat("eve", title="Not bob's")
    at = app_as(store, "bob", "chat")
    picker = at.selectbox(key="chat_pick")
    assert picker.options == ["+ New chat", "About Ada"]
    picker.select(first.id).run()
    shown = [md.value for m in at.chat_message for md in m.markdown]
    assert shown.index("who is ada?") < shown.index("Ada Lovelace, a mathematician.")
    assert any("get_user · 12 ms" in e.label for e in at.expander)
    assert at.text_area(key=f"chat_system_{first.id}").value == "Be brief"
    assert at.text_input(key="chat_api_key").value == ""  # a key is never shown back
    at.text_input(key=f"chat_title_{first.id}").input("Ada, resumed")
    at.button(key="chat_rename").click().run()
    assert store.get_chat(first.id).title == "Ada, resumed"
    at.button(key="chat_delete").click().run()
    assert store.list_chats(user="bob") == []


def test_chat_lab_page_runs_a_turn_through_the_gateway(store, gateway, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai)
    monkeypatch.setenv("OPENAI_MODEL", "fake-model")
    at = app_as(store, "bob", "chat")
    at.chat_input[0].set_value('get_user {"email": "alan@example.com"}').run()
    assert not at.exception and not at.error, texts(at.error)
    (session,) = store.list_chats(user="bob")
    messages = [m.content for m in store.chat_messages(session.id)]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert "Alan Turing" in messages[2]["content"] and messages[2]["_latency_ms"] > 0
    assert messages[3]["content"].startswith("Tool result:")
    assert session.settings["base_url"] == fake_openai and "api_key" not in session.settings


def test_chat_lab_page_reports_a_failing_model_and_saves_nothing(store, gateway, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai)
    at = app_as(store, "bob", "chat")
    at.chat_input[0].set_value("[fail] hello").run()
    assert any("HTTP 500" in e for e in texts(at.error)), texts(at.error)
    assert store.list_chats(user="bob") == []


def test_console_command_runs_streamlit_headless():
    from console.commands import streamlit_command

    args = streamlit_command(host="127.0.0.1", port=8502)
    assert args[1:4] == ["-m", "streamlit", "run"] and args[4].endswith("console/app.py")
    flags = dict(zip(args[5::2], args[6::2], strict=True))
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.port"] == "8502" and flags["--server.address"] == "127.0.0.1"


def test_form_rows_round_trip_keeps_fields_the_tables_do_not_show():
    routers = [{"prefix": "/acme/a", "server": "a", "cors": {"allowOrigins": ["*"]}, "auth": {"mode": "apikey"}}]
    rows = editing.routers_to_rows(routers)
    assert rows == [{"prefix": "/acme/a", "server": "a", "auth": "apikey"}]
    rows.append({"prefix": float("nan"), "server": None, "auth": None})  # the editor's empty new row
    assert editing.rows_to_routers(rows, original=routers) == routers
    upstream = [{"name": "fs", "type": "stdio", "command": "npx", "args": ["-y", "server"], "env": {"A": "1"}}]
    assert editing.rows_to_mcp(editing.mcp_to_rows(upstream), original=upstream) == upstream
    tool = {"name": "t", "args": [{"name": "q", "position": "query", "required": False, "type": "string",
                                   "items": {"type": "string"}}]}
    assert editing.rows_to_args(editing.args_to_rows(tool), original=tool["args"]) == tool["args"]
    assert editing.add_arg(tool, name="q") == [editing.FieldError("args.name", "'q' already exists in tool 't'")]


def test_tool_runner_says_when_the_gateway_cannot_be_reached(store):
    at = app_as(store, "bob", "tools")
    assert any("cannot reach the gateway" in e for e in texts(at.error)), texts(at.error)


def test_editor_form_adds_a_tool_allowed_on_the_server(store):
    at = open_in_editor(app_as(store, "admin", "editor"), "acme/users")
    at.text_input(key="ed_add_tool_name").input("list_users")
    at.text_input(key="ed_add_tool_endpoint").input("{{ config.base }}/users")
    next(b for b in at.button if b.label == "Add tool").click().run()
    assert any(e.label == "Tool list_users" for e in at.expander)
    at.button(key="ed_save").click().run()
    content = store.get_document("acme", "users").content
    assert [t["name"] for t in content["tools"]] == ["get_user", "list_users"]
    assert content["servers"][0]["allowedTools"] == ["get_user", "list_users"]


def test_import_translates_an_unla_document(store):
    unla = users_doc(name="unla", prefix="/acme/unla")
    unla["tools"][0]["endpoint"] = "{{.Config.base}}/users/{{.Args.email}}"
    at = app_as(store, "admin", "importer")
    at.radio(key="im_source").set_value("Paste text").run()
    at.text_area(key="im_text").input(json.dumps(unla)).run()
    assert any("an Unla document" in c.value for c in at.caption)
    assert list(at.table[0].value["endpoint"]) == ["{{ config.base }}/users/{{ args.email }}"]


def test_import_fetches_a_spec_from_a_url(store, tmp_path):
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    (tmp_path / "doc.yaml").write_text(editing.to_yaml(users_doc(name="fetched", prefix="/acme/fetched")))

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        member = app_as(store, "bob", "importer")  # a member's URL must be public: no loopback service
        member.radio(key="im_source").set_value("Fetch a URL").run()
        member.text_input(key="im_url").input(f"http://127.0.0.1:{server.server_address[1]}/doc.yaml").run()
        member.button(key="im_fetch").click().run()
        assert any("loopback/private address" in e for e in texts(member.error))
        at = app_as(store, "admin", "importer")
        at.radio(key="im_source").set_value("Fetch a URL").run()
        at.text_input(key="im_url").input(f"http://127.0.0.1:{server.server_address[1]}/missing.yaml").run()
        at.button(key="im_fetch").click().run()
        assert any("HTTP 404" in e for e in texts(at.error))
        at.text_input(key="im_url").input(f"http://127.0.0.1:{server.server_address[1]}/doc.yaml").run()
        at.button(key="im_fetch").click().run()
        assert list(at.table[0].value["tool"]) == ["get_user"]
        at.button(key="im_save").click().run()
        assert store.get_document("acme", "fetched").updated_by == "admin"
    finally:
        server.shutdown()
        server.server_close()


def test_form_mode_round_trip_changes_nothing(store):
    at = open_in_editor(app_as(store, "admin", "editor"), "acme/users")
    at.button(key="ed_save").click().run()
    assert not at.exception and not at.error, texts(at.error)
    assert store.get_document("acme", "users").version == 1  # an unchanged save writes no version
    assert texts(at.success) == ["No changes: the stored version is the same."]
    assert at.session_state["ed_draft"] == store.get_document("acme", "users").content


def test_editor_form_shows_and_keeps_a_routers_tool_shaping(store):
    doc = users_doc()
    doc["routers"][0]["tools"] = {"get_user": {"name": "find_user", "description": "Find one user",
                                               "arguments": {"email": {"description": "Their address"}},
                                               "annotations": {"readOnlyHint": True}}}
    store.save_document(doc, author="admin")
    at = open_in_editor(app_as(store, "admin", "editor"), "acme/users")
    box = next(e for e in at.expander if e.label.startswith("Tool shaping — /acme/users"))
    assert not box.error
    at.text_input(key=ed_key(at, "tool0_desc")).input("Get one user by address").run()
    at.button(key="ed_save").click().run()
    assert not at.exception, [e.value for e in at.exception]
    saved = store.get_document("acme", "users").content
    assert saved["tools"][0]["description"] == "Get one user by address"
    assert saved["routers"][0]["tools"] == doc["routers"][0]["tools"]  # the table round-trips the shaping
    # A document without shaping shows an empty table, and saving adds no empty tools block.
    at = open_in_editor(app_as(store, "admin", "editor"), "beta/secret")
    assert any(e.label.startswith("Tool shaping — /beta/secret") for e in at.expander)
    at.text_input(key=ed_key(at, "tool0_desc")).input("Get one secret user").run()
    at.button(key="ed_save").click().run()
    saved = store.get_document("beta", "secret").content
    assert saved["tools"][0]["description"] == "Get one secret user" and "tools" not in saved["routers"][0]


def test_shaping_rows_round_trip_and_name_bad_json():
    shapes = {"t": {"name": "u", "hidden": True, "arguments": {"org": {"fixed": "acme"}},
                    "annotations": {"readOnlyHint": True}}}
    assert editing.rows_to_shapes(editing.shapes_to_rows(shapes), "routers[0]") == (shapes, [])
    _, problems = editing.rows_to_shapes([{"tool": "t", "arguments": "{org: 1"}, {"tool": "v", "annotations": "[1]"}],
                                         "routers[2]")
    assert [p.path for p in problems] == ["routers[2].tools.t.arguments", "routers[2].tools.v.annotations"]
    assert problems[0].reason.startswith("not JSON") and "JSON object" in problems[1].reason


def test_tool_runner_shows_and_calls_a_shaped_tool(store, gateway):
    doc = store.get_document("acme", "users")
    content = json.loads(json.dumps(doc.content))
    content["routers"][0]["tools"] = {"get_user": {"name": "find_user", "title": "Find a user"}}
    saved = store.save_document(content, author="admin", base_version=doc.version)
    wait_for(lambda: servers.fetch_readyz(gateway).get("revision", -1) >= store.revision(), what="the reload")
    at = app_as(store, "bob", "tools")
    assert at.selectbox(key="tr_tool").options == ["find_user"], saved.version
    at.text_input(key="tr_arg_/acme/users_find_user_email").input("ada@example.com")
    at.button[-1].click().run()
    assert not at.exception
    assert any("Ada Lovelace" in c.value for c in at.code)


# -- my credentials ---------------------------------------------------------------
def test_my_credentials_sets_replaces_and_deletes_without_showing_values(store, monkeypatch):
    monkeypatch.setenv("MCPGW_SECRETS_KEY", "console-test-secrets-key-0123456789")
    key, _ = store.create_key("bob", "acme", name="laptop")
    eve_key, _ = store.create_key("eve", "beta", name="eve-key")
    at = app_as(store, "bob", "credentials")
    assert "My credentials" in texts(at.title)
    owners = at.selectbox(key="cr_owner").options
    assert owners[0] == "My account" and any(f"#{key.id}" in o for o in owners)
    assert not any(f"#{eve_key.id}" in o for o in owners)  # only bob's own keys
    at.text_input(key="cr_name").input("GITHUB_TOKEN")
    at.text_input(key="cr_value").input("console-value-1")
    at.button(key="FormSubmitter:cr_set-Set secret").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [s.name for s in store.list_secrets(user="bob")] == ["GITHUB_TOKEN"]
    assert store.sealed_secrets(user="bob")["GITHUB_TOKEN"].open() == "console-value-1"
    shown = [e.value for kind in (at.success, at.error, at.markdown, at.caption, at.code, at.text) for e in kind]
    assert shown and not any("console-value-1" in str(v) for v in shown), shown
    assert list(at.dataframe[0].value["name"]) == ["GITHUB_TOKEN"]
    at.selectbox(key="cr_delete_pick").select("GITHUB_TOKEN")
    at.button(key="cr_delete").click().run()
    assert store.list_secrets(user="bob") == []


def test_console_hides_deploy_and_draws_latency_of_a_single_bucket():
    from console.commands import streamlit_command

    args = streamlit_command(host="127.0.0.1", port=8501)
    assert args[args.index("--client.toolbarMode") + 1] == "minimal"
    now = datetime(2026, 1, 1, 12, 0, 30, tzinfo=timezone.utc)

    def record(ts):
        return AuditRecord(ts=ts, tenant="t", prefix="/t/a", server="a", tool="x", outcome="ok", latency_ms=5.0)

    one = usage.over_time(usage.frame([record(now), record(now)]), "1min")
    assert len(one) == 1 and not usage.latency_as_line(one)  # one point: the page draws bars, not a blank line
    two = usage.over_time(usage.frame([record(now), record(now + timedelta(minutes=1))]), "1min")
    assert usage.latency_as_line(two)
    assert not usage.latency_as_line(usage.over_time(usage.frame([]), "1min"))
