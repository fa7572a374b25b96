"""REST tool arguments are URL-safe wherever they land, and broken endpoints are refused at save.

A real recording backend (it answers each request with the raw request target it received) behind a
real gateway subprocess, called with the MCP client: hand-written, Unla-imported and OpenAPI-imported
tools alike. Then the endpoint checks of validation, as ``doc.problems()``, ``gw.check()`` and
``mcpgw check`` report them.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mcpgw_sdk import ConfigError, Workspace
from mcpgw_sdk.builders import DocumentBuilder
from mcpgw_sdk.cli import cli
from mcpgw_sdk.client import McpClient
from mcpgw_sdk.documents import to_yaml
from mcpgw_sdk.openapi import from_openapi
from mcpgw_sdk.opening import open_store
from mcpgw_sdk.unla import from_unla
from tests.fixtures_gateway import run_gateway, seed
from tests.helpers import Procs, RecordingBackend

PREFIX = "/default/urls"


def url_tools() -> list[dict]:
    return [
        {"name": "get_user", "endpoint": "{{ config.base }}/user/{{ args.username }}",
         "args": [{"name": "username", "position": "path", "required": True}]},
        {"name": "get_item", "endpoint": "{{ config.base }}/items/{id}",
         "args": [{"name": "id", "position": "path", "required": True}]},
        {"name": "search", "endpoint": "{{ config.base }}/search?q={{ args.q }}",
         "inputSchema": {"type": "object", "properties": {"q": {"type": "string"}}},
         "args": [{"name": "tag", "position": "query"}]},
        {"name": "get_file", "endpoint": "{{ config.base }}/files/{{ args.path }}",
         "args": [{"name": "path", "position": "path", "required": True, "raw": True}]},
        {"name": "page", "endpoint": "{{ config.base }}/pages/{{ args.n }}",
         "args": [{"name": "n", "position": "path", "type": "integer"},
                  {"name": "size", "position": "query", "type": "integer"}]},
    ]


def unla_document(base: str) -> dict:
    """An Unla document as Unla users keep it (Go templates), imported with from_unla."""
    return from_unla({
        "name": "unla", "tenant": "default", "createdAt": "2025-01-01T00:00:00Z",
        "routers": [{"server": "unla", "prefix": "/default/unla"}],
        "servers": [{"name": "unla", "config": {"base": base}}],
        "tools": [{"name": "get_user", "method": "GET", "endpoint": "{{.Config.base}}/user/{{.Args.username}}",
                   "args": [{"name": "username", "position": "path", "required": True, "type": "string"}]}]})


def openapi_document(base: str) -> dict:
    spec = {"openapi": "3.0.3", "info": {"title": "Users", "version": "1"}, "paths": {
        "/user/{username}/posts/{post-id}": {"get": {"operationId": "get_post", "parameters": [
            {"name": "username", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "post-id", "in": "path", "required": True, "style": "simple", "schema": {"type": "integer"}}]}}}}
    return from_openapi(spec, name="oas", base_url=base)


@pytest.fixture(scope="module")
def backend():
    """The recording backend; yields its ``/v2`` base URL."""
    with RecordingBackend() as server:
        yield f"{server.url}/v2"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, backend):
    """A gateway subprocess serving the hand-written, Unla and OpenAPI documents over the recording backend."""
    tmp = tmp_path_factory.mktemp("urls")
    db = f"sqlite:///{tmp / 'gw.db'}"
    doc = {"name": "urls", "tenant": "default", "routers": [{"server": "api", "prefix": PREFIX}],
           "servers": [{"name": "api", "config": {"base": backend}}], "tools": url_tools()}
    revision = seed(db, doc, unla_document(backend), openapi_document(backend))
    with Procs(tmp) as procs:
        yield run_gateway(procs, db, revision=revision)


def received(gateway, tool: str, arguments: dict, prefix: str = PREFIX) -> str:
    """The raw request target the backend received for one tools/call through the gateway."""
    with McpClient(gateway.mcp_url(prefix)) as client:
        result = client.call_tool(tool, arguments)
    assert not result.get("isError"), result
    return json.loads(result["content"][0]["text"])["target"]


TRAVERSAL = "../../admin/delete?all=1#"
ENCODED_TRAVERSAL = "..%2F..%2Fadmin%2Fdelete%3Fall%3D1%23"


def test_a_traversal_string_arrives_as_one_encoded_segment(gateway):
    assert received(gateway, "get_user", {"username": TRAVERSAL}) == f"/v2/user/{ENCODED_TRAVERSAL}"
    assert received(gateway, "get_item", {"id": TRAVERSAL}) == f"/v2/items/{ENCODED_TRAVERSAL}"
    assert received(gateway, "get_user", {"username": ".."}) == "/v2/user/%2E%2E"
    assert received(gateway, "get_user", {"username": "50%/x"}) == "/v2/user/50%25%2Fx"


def test_spaces_and_non_ascii_are_percent_encoded(gateway):
    assert received(gateway, "get_user", {"username": "ada lovelace"}) == "/v2/user/ada%20lovelace"
    assert received(gateway, "get_user", {"username": "é"}) == "/v2/user/%C3%A9"
    assert received(gateway, "get_item", {"id": "a b/é"}) == "/v2/items/a%20b%2F%C3%A9"


def test_query_values_are_encoded_as_values(gateway):
    raw = received(gateway, "search", {"q": "a&admin=1 #x/y", "tag": "x&y=z"})
    assert raw == "/v2/search?q=a%26admin%3D1%20%23x%2Fy&tag=x%26y%3Dz"


def test_a_raw_argument_keeps_its_slashes(gateway):
    assert received(gateway, "get_file", {"path": "docs/guide/a b é.md"}) == "/v2/files/docs/guide/a%20b%20%C3%A9.md"


def test_a_whole_float_for_an_integer_is_sent_as_an_integer(gateway):
    assert received(gateway, "page", {"n": 5.0, "size": 10.0}) == "/v2/pages/5?size=10"


def test_unla_and_openapi_imports_encode_the_same_way(gateway):
    assert received(gateway, "get_user", {"username": TRAVERSAL}, prefix="/default/unla") == \
        f"/v2/user/{ENCODED_TRAVERSAL}"
    assert received(gateway, "get_post", {"username": "a/b", "post-id": 7}, prefix="/default/oas") == \
        "/v2/user/a%2Fb/posts/7"


# -- validation: broken endpoints are refused at save, with document, field path and reason ----------------

def broken_document(doc: DocumentBuilder | None = None) -> DocumentBuilder:
    """One fine tool and five broken endpoints (tools[1] to tools[5])."""
    doc = doc if doc is not None else DocumentBuilder("broken")
    doc.rest_server("api", config={"base": "http://127.0.0.1:9"})
    doc.tool("ok").get("{{ config.base }}/users/{id}").arg("id", position="path")
    doc.tool("unbalanced").get("{{ config.base }}/users/{id").arg("id", position="path")
    doc.tool("unknown_placeholder").get("{{ config.base }}/users/{email}")
    doc.tool("query_placeholder").get("{{ config.base }}/users/{q}").arg("q", position="query")
    doc.tool("unknown_arg").get("{{ config.base }}/users/{{ args.mail }}").arg("email", position="query")
    doc.tool("unplaced").get("{{ config.base }}/users").arg("id", position="path")
    doc.router("/default/broken", server="api")
    return doc


EXPECTED = [
    "default/broken: tools[1].endpoint: unbalanced '{' or '}' in '/users/{id'; a path argument is placed with {name}",
    "default/broken: tools[1].endpoint: path argument 'id' (args[0]) is not placed: write {id} or {{ args.id }} "
    "in the endpoint",
    "default/broken: tools[2].endpoint: placeholder {email} names no argument of the tool (arguments: none)",
    "default/broken: tools[3].endpoint: placeholder {q} is filled only by a path argument; 'q' has position query",
    "default/broken: tools[4].endpoint: args.mail is not an argument of the tool (arguments: email)",
    "default/broken: tools[5].endpoint: path argument 'id' (args[0]) is not placed: write {id} or {{ args.id }} "
    "in the endpoint",
]


def test_doc_problems_name_each_broken_endpoint():
    assert broken_document().problems() == EXPECTED


def test_a_broken_endpoint_is_not_saved(sqlite_store):
    gw = Workspace(sqlite_store, author="tester")
    gw.create_tenant("default", prefix="/default")
    with pytest.raises(ConfigError) as info:
        broken_document(gw.document("broken")).save()
    assert info.value.errors == EXPECTED
    assert [d.name for d in gw.documents()] == []


def test_gw_check_and_mcpgw_check_report_the_same_problems_and_warnings(tmp_path, monkeypatch):
    monkeypatch.delenv("MCPGW_TEMPLATE_ENV", raising=False)
    content = broken_document().content
    content["servers"][0]["config"]["token"] = '{{ env("URL_TEST_TOKEN") }}'
    (tmp_path / "broken.yaml").write_text(to_yaml(content))
    db = f"yaml:///{tmp_path}"
    with Workspace(open_store(db)) as gw:
        found = gw.check()
    assert found == EXPECTED
    warning = ("default/broken: servers[0].config.token: env('URL_TEST_TOKEN') is not allowed; add it to "
               "MCPGW_TEMPLATE_ENV (what reads it fails until then)")
    assert found.warnings == [warning]
    result = CliRunner().invoke(cli, ["check", "--db", db])
    assert result.exit_code == 1
    assert result.stdout.splitlines() == EXPECTED
    assert f"Warning: {warning}" in result.stderr


def test_raw_is_an_argument_flag_of_the_format():
    doc = DocumentBuilder("files")
    doc.rest_server("api", config={"base": "http://127.0.0.1:9"})
    doc.tool("get_file").get("{{ config.base }}/files/{path}").arg("path", position="path", raw=True)
    doc.router("/default/files", server="api")
    assert doc.problems() == [] and doc.content["tools"][0]["args"][0]["raw"] is True
    doc.content["tools"][0]["args"][0]["raw"] = "yes"
    assert doc.problems() == ["default/files: tools[0].args[0].raw: expected true or false, got string"]


def test_the_api_refuses_a_broken_endpoint_with_its_problems(sqlite_store):
    from gateway_server.api import create_app

    sqlite_store.create_user("admin", "admin-secret-1", role="admin")
    client = create_app(store=sqlite_store, jwt_secret="x" * 32).test_client()
    token = client.post("/api/v1/auth/login", json={"username": "admin", "password": "admin-secret-1"}).json
    resp = client.post("/api/v1/documents", json=broken_document().content,
                       headers={"Authorization": f"Bearer {token['access_token']}"})
    assert resp.status_code == 422, resp.json
    assert resp.json["error"]["details"] == EXPECTED
