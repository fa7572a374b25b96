"""The notebook API: builders, save with conflict detection, versions, lists, display."""

from __future__ import annotations

import pytest

import mcpgw_sdk
from mcpgw_sdk import ConfigError, ConflictError, NotFound, Workspace
from mcpgw_sdk.builders import DocumentBuilder
from mcpgw_sdk.display import Diff, Table


def users_doc(gw_or_none=None, *, name="users", tenant="default", prefix="/default/users") -> DocumentBuilder:
    doc = gw_or_none.document(name, tenant=tenant) if gw_or_none else DocumentBuilder(name, tenant=tenant)
    doc.rest_server("users", config={"base": "http://127.0.0.1:5236"}, description="Users API")
    t = doc.tool("get_user", description="Get a user by email").get("{{ config.base }}/users/{{ args.email }}")
    t.arg("email", position="path", required=True, type="string", description="The email")
    t.response("{{ response.body }}")
    doc.tool("list_users", description="List users").get("{{ config.base }}/users")
    doc.router(prefix, server="users")
    return doc


@pytest.fixture
def gw(store):
    """A workspace over an upgraded store (every backend), with the ``default`` tenant."""
    workspace = Workspace(store, author="tester")
    if "default" not in [t.name for t in workspace.tenants()]:
        workspace.create_tenant("default", prefix="/default")
    return workspace


# -- builders (no database) ------------------------------------------------------

def test_builder_writes_the_document_format():
    doc = users_doc()
    doc.prompt("greet", text="Say hi to {name}", arguments=["name"])
    doc.mcp_server("everything", type="stdio", command="npx", args=["-y", "server-everything"])
    c = doc.content
    assert c["name"] == "users" and c["tenant"] == "default"
    assert c["servers"] == [{"name": "users", "allowedTools": ["get_user", "list_users"], "description": "Users API",
                             "config": {"base": "http://127.0.0.1:5236"}}]
    assert c["tools"][0] == {"name": "get_user", "description": "Get a user by email", "method": "GET",
                             "endpoint": "{{ config.base }}/users/{{ args.email }}",
                             "args": [{"name": "email", "position": "path", "required": True, "type": "string",
                                       "description": "The email"}],
                             "responseBody": "{{ response.body }}"}
    assert c["routers"] == [{"server": "users", "prefix": "/default/users"}]
    assert c["prompts"][0]["promptResponse"][0]["content"]["text"] == "Say hi to {name}"
    assert c["mcpServers"][0] == {"name": "everything", "type": "stdio", "command": "npx",
                                  "args": ["-y", "server-everything"]}
    assert doc.problems() == []


def test_builder_edits_existing_parts_in_place():
    doc = users_doc()
    doc.tool("get_user").arg("email", position="query").describe("Changed")
    assert len(doc.content["tools"]) == 2
    assert doc.content["tools"][0]["args"] == [{"name": "email", "position": "query", "required": False,
                                                "type": "string"}]
    assert doc.content["tools"][0]["description"] == "Changed"
    doc.tool("list_users").arg("limit", type="integer", default=10)
    assert doc.content["tools"][1]["args"][0]["default"] == "10"
    doc.remove("tool", "list_users")
    assert [t["name"] for t in doc.content["tools"]] == ["get_user"]
    assert doc.content["servers"][0]["allowedTools"] == ["get_user"]
    with pytest.raises(NotFound, match="list_users"):
        doc.remove("tool", "list_users")


def test_builder_errors_name_the_field():
    doc = users_doc()
    with pytest.raises(ConfigError, match=r"args\[email\]\.position: 'bdy' is not one of"):
        doc.tool("get_user").arg("email", position="bdy")
    with pytest.raises(ConfigError, match=r"mcpServers\[x\]\.type"):
        doc.mcp_server("x", type="websocket")
    doc.tool("no_endpoint")
    problems = doc.problems()
    assert any("tools[2].endpoint" in p for p in problems), problems
    with pytest.raises(ConfigError) as info:
        doc.validate()
    assert info.value.errors == problems


def test_unattached_builder_refuses_to_save():
    with pytest.raises(ConfigError, match="not attached"):
        users_doc().save()


# -- display (no database) ---------------------------------------------------------

def test_html_escapes_names_and_shows_args():
    doc = DocumentBuilder("x<y", tenant="default")
    doc.rest_server("s")
    tool = doc.tool("t1", description="<script>alert(1)</script>").get("http://h/?a=1&b=<2>")
    tool.arg("q<b>", description="a & b")
    html = tool._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "q&lt;b&gt;" in html and "a &amp; b" in html and "http://h/?a=1&amp;b=&lt;2&gt;" in html
    assert "x&lt;y" in doc._repr_html_() and "x<y" not in doc._repr_html_()


def test_diff_html_is_coloured_and_escaped():
    html = Diff("--- a\n+++ b\n@@ -1 +1 @@\n-old <b>\n+new &\n same\n")._repr_html_()
    assert '<span class="del">-old &lt;b&gt;</span>' in html
    assert '<span class="add">+new &amp;</span>' in html
    assert '<span class="hunk">' in html


def test_table_to_dataframe_and_text():
    table = Table([{"name": "a", "n": 1}, {"name": "b", "n": 2}], columns=["name"])
    frame = table.to_dataframe()
    assert list(frame["name"]) == ["a", "b"] and list(frame["n"]) == [1, 2]
    assert repr(table).splitlines() == ["name", "a", "b"]


# -- against a store (every backend) -------------------------------------------------

def test_save_versions_diff_rollback(gw):
    doc = users_doc(gw)
    assert doc.version is None
    doc.save()
    assert doc.version == 1
    loaded = gw.get("default", "users")
    assert loaded.version == 1
    assert loaded.content["tools"][0]["endpoint"] == "{{ config.base }}/users/{{ args.email }}"
    assert loaded.record.updated_by == "tester"

    doc.tool("get_user").describe("Get one user")  # the part builders stay attached after save()
    doc.save()
    assert doc.version == 2
    assert gw.get("default", "users").content["tools"][0]["description"] == "Get one user"

    versions = gw.versions("default", "users")
    assert [v.version for v in versions] == [2, 1]
    assert [v.author for v in versions] == ["tester", "tester"]
    assert "Versions" in versions._repr_html_()
    diff = gw.diff("default", "users", 1, 2)
    assert "-  description: Get a user by email" in diff and "+  description: Get one user" in diff
    assert '<span class="add">' in diff._repr_html_()

    restored = gw.rollback("default", "users", 1)
    assert restored.version == 3
    assert restored.content["tools"][0]["description"] == "Get a user by email"
    assert gw.versions("default", "users")[0].action == "revert"


def test_concurrent_edit_is_a_conflict(gw):
    users_doc(gw).save()
    mine, theirs = gw.get("default", "users"), gw.get("default", "users")
    theirs.tool("get_user").describe("Theirs")
    theirs.save()
    mine.tool("get_user").describe("Mine")
    with pytest.raises(ConflictError):
        mine.save()
    assert gw.get("default", "users").content["tools"][0]["description"] == "Theirs"

    first, second = users_doc(gw, name="new", prefix="/default/new"), users_doc(gw, name="new", prefix="/default/new")
    first.save()
    with pytest.raises(ConflictError, match="created by someone else"):
        second.save()


def test_invalid_document_is_not_saved(gw):
    doc = users_doc(gw)
    doc.tool("broken")  # no endpoint
    with pytest.raises(ConfigError, match=r"tools\[2\]\.endpoint"):
        doc.save()
    with pytest.raises(NotFound):
        gw.get("default", "users")


def test_lists_across_documents(gw):
    users_doc(gw).save()
    other = gw.document("tools", tenant="default")
    other.mcp_server("everything", type="stdio", command="npx", args=["-y", "server-everything"])
    other.router("/default/everything", server="everything")
    other.prompt("greet", text="Hi {name}", arguments=["name"])
    other.save()

    assert [(d.tenant, d.name, d.version) for d in gw.documents()] == [("default", "tools", 1), ("default", "users", 1)]
    tools = gw.tools()
    assert [(t.document, t.server, t.name, t.method) for t in tools] == [
        ("users", "users", "get_user", "GET"), ("users", "users", "list_users", "GET")]
    assert tools[0].args == ("email",)
    html = tools[0]._repr_html_()
    assert "get_user" in html and "<th>position</th>" in html and "path" in html
    frame = tools.to_dataframe()
    assert list(frame["name"]) == ["get_user", "list_users"]

    servers = {s.name: s for s in gw.servers()}
    assert servers["users"].kind == "rest" and servers["users"].prefixes == ("/default/users",)
    assert servers["everything"].kind == "mcp" and servers["everything"].target == "npx -y server-everything"
    assert [u.name for u in gw.upstreams()] == ["everything"]
    assert [(p["name"], p["arguments"]) for p in gw.prompts()] == [("greet", ["name"])]
    assert gw.check() == []

    gw.delete("default", "tools")
    assert [d.name for d in gw.documents()] == ["users"]
    assert gw.rollback("default", "tools", 1).version == 3


def test_tenants_users_and_keys(gw):
    gw.create_tenant("acme", prefix="/acme", description="Acme Inc.")
    assert [(t.name, t.prefix) for t in gw.tenants()] == [("acme", "/acme"), ("default", "/default")]
    gw.create_user("alice", "correct horse", role="member", tenants=["acme"])
    with pytest.raises(ConfigError, match="role: 'owner'"):
        gw.create_user("bob", "pw-pw-pw-pw", role="owner")
    assert [(u.name, u.role, u.tenants) for u in gw.users()] == [("alice", "member", ("acme",))]

    new = gw.create_key("alice", "acme", name="laptop", expires_days=30)
    assert new.secret and new.secret in repr(new) and "not shown again" in repr(new)
    keys = gw.keys(user="alice")
    assert [k.id for k in keys] == [new.key.id]
    assert new.secret not in repr(keys) and new.secret not in keys._repr_html_()
    assert new.secret not in keys.to_dataframe().to_csv()
    assert gw.store.verify_key(new.secret).id == new.key.id
    gw.revoke_key(new.key.id)
    assert gw.keys(user="alice")[0].revoked is True


def test_import_export_round_trip(gw, tmp_path):
    users_doc(gw).save()
    text = gw.export()
    assert text.startswith("name: users\n")
    path = tmp_path / "users.yaml"
    path.write_text(text.replace("Users API", "Users API v2"))
    saved = gw.import_file(path)
    assert [(d.name, d.version) for d in saved] == [("users", 2)]
    assert gw.get("default", "users").content["servers"][0]["description"] == "Users API v2"
    with pytest.raises(NotFound):
        gw.export(tenant="default", name="nope")


def test_connect_requires_upgrade_on_a_new_database(sqlite_url, monkeypatch):
    with pytest.raises(mcpgw_sdk.MigrationRequired, match="mcpgw db upgrade"):
        mcpgw_sdk.connect(sqlite_url)
    monkeypatch.setenv("MCPGW_DATABASE_URL", sqlite_url)
    with mcpgw_sdk.connect(upgrade=True, author="nb") as gw:
        assert gw.documents() == []
        assert "mcpgw.db" in repr(gw)


def test_openapi_preview_then_save(gw):
    spec = {"openapi": "3.0.3", "info": {"title": "Pets", "version": "1"},
            "servers": [{"url": "http://127.0.0.1:5236"}],
            "paths": {"/pets/{id}": {"get": {"operationId": "getPet", "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}],
                "responses": {"200": {"description": "ok"}}}}}}
    preview = gw.openapi(spec, name="pets", prefix="/default/pets")
    assert preview.version is None and [t["name"] for t in preview.content["tools"]] == ["getPet"]
    assert gw.documents() == []  # nothing written until save()
    preview.tool("getPet").describe("Get one pet")
    assert preview.save().version == 1
    assert gw.tools()[0].description == "Get one pet"
    again = gw.import_openapi(spec, name="pets", prefix="/default/pets", base_url="http://127.0.0.1:9")
    assert again.version == 2
    assert "http://127.0.0.1:9" in gw.export(name="pets")


def test_docstring_examples_run():
    import doctest

    from mcpgw_sdk import builders, display

    for module in (builders, display):
        result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert result.attempted > 0 and result.failed == 0, module.__name__
