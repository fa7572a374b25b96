"""OpenAPI import, faithful: real API descriptions imported and called through a real gateway.

The descriptions come from the npm package ``@readme/oas-examples`` (installed by ``make node-tools``
into ``.tools``): the Petstore, path- and operation-level servers, polymorphism, security schemes. Plus
hand-written specs for every request body media type and a GitHub-sized description generated here.
Each tool is called with the MCP client through a gateway subprocess, against an in-process backend that
answers with the request it received (method, raw target, headers, body) — so every assertion is on
what the API would really see.
"""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcpgw_sdk import ConfigError
from mcpgw_sdk import documents as d
from mcpgw_sdk.cli import cli
from mcpgw_sdk.client import McpClient
from mcpgw_sdk.openapi import from_openapi, load_spec, parse_spec_text
from mcpgw_sdk.templates import env_names
from tests.fixtures_gateway import run_gateway, seed
from tests.helpers import Procs, RecordingBackend, unavailable

EXAMPLES = Path(__file__).resolve().parent.parent / ".tools/node_modules/@readme/oas-examples"
ENV = {"PETS_PETSTORE_AUTH": "pet-token", "PETS_API_KEY": "pet key&1", "SEC_BASIC": "dXNlcjpwYXNz",
       "SEC_BEARER": "bearer-token"}


def example(name: str) -> dict:
    """A description of ``@readme/oas-examples`` (``3.0/json/petstore.json``)."""
    path = EXAMPLES / name
    if not path.exists():
        unavailable("the npm package @readme/oas-examples is not installed (make node-tools)")
    return load_spec(str(path))


@pytest.fixture(scope="module")
def backend():
    with RecordingBackend() as server:
        yield server.url


def _servers_to(spec: dict, backend: str) -> dict:
    """``spec`` with every absolute server URL (top, path item, operation) moved under ``backend``/s/."""
    def move(servers):
        for entry in servers or []:
            for scheme in ("https://", "http://"):
                if entry["url"].startswith(scheme) and not entry["url"].startswith(backend):  # shared by a $ref
                    entry["url"] = f"{backend}/s/" + entry["url"][len(scheme):]
    move(spec.get("servers"))
    for item in spec["paths"].values():
        move(item.get("servers"))
        for op in item.values():
            if isinstance(op, dict):
                move(op.get("servers"))
    return spec


BODIES = {
    "openapi": "3.1.0", "info": {"title": "Bodies", "version": "1"}, "servers": [{"url": "http://unused"}],
    "paths": {
        "/notes/{id}": {
            "put": {"operationId": "putText", "parameters": [{"name": "id", "in": "path", "required": True,
                                                               "schema": {"type": "string"}}],
                    "requestBody": {"required": True, "content": {"text/plain": {"schema": {"type": "string"}}}}},
            "post": {"operationId": "postJson", "parameters": [
                {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "mode", "in": "query", "schema": {"type": "string"}}],
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "mode": {"type": "string"},
                    "note": {"type": ["string", "null"]}}}}}}},
        },
        "/blobs": {"post": {"operationId": "putBlob", "requestBody": {"content": {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}},
        "/forms": {"post": {"operationId": "postForm", "requestBody": {"content": {
            "application/x-www-form-urlencoded": {"schema": {"type": "object", "properties": {
                "name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}}}}}}}},
        "/uploads": {"post": {"operationId": "postMultipart", "requestBody": {"content": {
            "multipart/form-data": {"schema": {"type": "object", "properties": {
                "caption": {"type": "string"}, "photo": {"type": "string", "format": "binary"}}}}}}}},
        "/search": {"get": {"operationId": "search", "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "nullable": True}},
            {"name": "q", "in": "query", "schema": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}]}},
    },
}


def _github_sized(backend: str, operations: int = 1200) -> dict:
    """A description shaped like GitHub's: long, similar operation ids, many parameters, shared schemas."""
    schemas = {f"thing-{i}": {"type": "object", "description": "x" * 200, "properties": {
        f"field_{j}": {"type": "string", "description": "y" * 80} for j in range(30)}} for i in range(300)}
    paths = {}
    for i in range(operations):
        paths[f"/orgs/{{org}}/actions/permissions/selected-repositories-{i}/{{repository_id}}"] = {"put": {
            "operationId": f"actions/set-selected-repositories-enabled-github-actions-organization-{i}",
            "summary": "Enable a selected repository for GitHub Actions in an organization",
            "parameters": [{"name": "org", "in": "path", "required": True, "schema": {"type": "string"}},
                           {"name": "repository_id", "in": "path", "required": True, "schema": {"type": "integer"}},
                           {"name": "per_page", "in": "query", "schema": {"type": "integer", "default": 30}}],
            "requestBody": {"content": {"application/json": {"schema": {
                "$ref": f"#/components/schemas/thing-{i % 300}"}}}},
            "responses": {"200": {"description": "ok", "content": {"application/json": {"schema": {
                "type": "array", "items": {"$ref": f"#/components/schemas/thing-{(i + 1) % 300}"}}}}}},
        }}
    return {"openapi": "3.0.3", "info": {"title": "GitHub-sized", "version": "1"}, "servers": [{"url": backend}],
            "paths": paths, "components": {"schemas": schemas, "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"}}}, "security": [{"bearer": []}]}


@pytest.fixture(scope="module")
def documents(backend):
    """The imported documents by name (their prefix is /default/<name>)."""
    pets = from_openapi(example("3.0/json/petstore.json"), name="pets", base_url=f"{backend}/v2")
    servers = from_openapi(_servers_to(example("3.0/json/server-path-level.json"), backend), name="srv")
    poly = from_openapi(example("3.0/json/polymorphism.json"), name="poly", base_url=backend)
    sec = from_openapi(example("3.0/json/security.json"), name="sec", base_url=backend, config={
        "apiKey_header": "header-key", "apiKey_query": "q&key", "apiKey_cookie": "cookie-key"},
        headers={"X-Client": "mcpgw {{ env('SEC_BEARER') | length }}"})
    bodies = from_openapi(BODIES, name="bodies", base_url=backend)
    big = from_openapi(_github_sized(backend), name="big", config={"bearer": "Bearer big-token"})
    return {doc["name"]: doc for doc in (pets, servers, poly, sec, bodies, big)}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, documents):
    tmp = tmp_path_factory.mktemp("oas")
    db = f"sqlite:///{tmp / 'gw.db'}"
    revision = seed(db, *documents.values())
    # Every variable the generated config reads (bearer_jwt, oauth2… stay unset: they render empty).
    names = {n for doc in documents.values() for v in (doc["servers"][0].get("config") or {}).values()
             for n in env_names(v)}
    env = {**ENV, "MCPGW_TEMPLATE_ENV": ",".join(sorted(names | set(ENV)))}
    with Procs(tmp) as procs:
        yield run_gateway(procs, db, revision=revision, env=env)


def call(gateway, doc: str, tool: str, arguments: dict) -> dict:
    """What the backend received for one tools/call of ``tool`` in document ``doc``."""
    with McpClient(gateway.mcp_url(f"/default/{doc}")) as client:
        result = client.call_tool(tool, arguments)
    assert not result.get("isError"), result
    seen = json.loads(result["content"][0]["text"])
    seen["body"] = base64.b64decode(seen["body"])
    return seen


def refused(gateway, doc: str, tool: str, arguments: dict) -> bool:
    with McpClient(gateway.mcp_url(f"/default/{doc}")) as client:
        try:
            return bool(client.call_tool(tool, arguments).get("isError"))
        except Exception:  # noqa: BLE001 - an invalid-params error answer
            return True


def test_petstore_calls_arrive_as_the_description_means(gateway):
    seen = call(gateway, "pets", "addPet", {"name": "Rex", "photoUrls": ["u"], "status": "sold"})
    assert (seen["method"], seen["target"]) == ("POST", "/v2/pet")
    assert seen["headers"]["content-type"] == "application/json"
    assert json.loads(seen["body"]) == {"name": "Rex", "photoUrls": ["u"], "status": "sold"}
    assert seen["headers"]["authorization"] == "Bearer pet-token"  # petstore_auth (oauth2) from env()
    seen = call(gateway, "pets", "getPetById", {"petId": 7})
    assert seen["target"] == "/v2/pet/7" and seen["headers"]["api_key"] == "pet key&1"
    seen = call(gateway, "pets", "updatePetWithForm", {"petId": 7, "name": "Rex Jr", "status": "sold"})
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["body"] == b"name=Rex+Jr&status=sold"
    seen = call(gateway, "pets", "uploadFile", {"petId": 7, "additionalMetadata": "front"})
    assert seen["headers"]["content-type"].startswith("multipart/form-data; boundary=")  # multipart, no file
    assert b'name="additionalMetadata"\r\n\r\nfront' in seen["body"]
    photo = base64.b64encode(b"\x89PNG\r\n").decode()
    seen = call(gateway, "pets", "uploadFile", {"petId": 7, "file": {"name": "a.png", "content": photo,
                                                                       "contentType": "image/png"}})
    assert b'filename="a.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n' in seen["body"]


@pytest.mark.parametrize(("value", "segment"), [
    ("a/b", "a%2Fb"), ("what?x=1", "what%3Fx%3D1"), ("a#b", "a%23b"), ("ada lovelace", "ada%20lovelace"),
    ("zoë 東京", "zo%C3%AB%20%E6%9D%B1%E4%BA%AC"), ("../admin", "..%2Fadmin"),
])
def test_path_arguments_arrive_as_one_encoded_segment(gateway, value, segment):
    assert call(gateway, "pets", "getUserByName", {"username": value})["target"] == f"/v2/user/{segment}"


def test_every_body_media_type_arrives_with_its_content_type(gateway):
    seen = call(gateway, "bodies", "putText", {"id": "n1", "body": "héllo\nworld"})
    assert (seen["method"], seen["target"], seen["headers"]["content-type"]) == ("PUT", "/notes/n1", "text/plain")
    assert seen["body"] == "héllo\nworld".encode()
    blob = bytes(range(256))
    seen = call(gateway, "bodies", "putBlob", {"body": base64.b64encode(blob).decode()})
    assert seen["headers"]["content-type"] == "application/octet-stream" and seen["body"] == blob
    seen = call(gateway, "bodies", "postForm", {"name": "a&b", "tags": ["x"]})
    assert seen["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert seen["body"] == b"name=a%26b&tags=%5B%22x%22%5D"
    seen = call(gateway, "bodies", "postMultipart", {"caption": "hi", "photo": base64.b64encode(b"PNG").decode()})
    assert seen["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    assert b'name="caption"\r\n\r\nhi' in seen["body"] and b'name="photo"; filename="photo"' in seen["body"]


def test_a_body_property_named_like_a_parameter_is_renamed_not_dropped(gateway, documents):
    tool = next(t for t in documents["bodies"]["tools"] if t["name"] == "postJson")
    names = {a["name"]: a for a in tool["args"]}
    assert names["body_id"]["field"] == "id" and names["body_mode"]["field"] == "mode"
    seen = call(gateway, "bodies", "postJson", {"id": "n1", "mode": "fast", "body_id": 5, "body_mode": "slow",
                                                "note": None})
    assert seen["target"] == "/notes/n1?mode=fast"
    assert json.loads(seen["body"]) == {"id": 5, "mode": "slow", "note": None}  # type: [string, null]


def test_path_and_operation_servers_are_used(gateway, documents, backend):
    endpoints = {t["name"]: t["endpoint"] for t in documents["srv"]["tools"]}
    base = backend
    assert endpoints["get_relative-path-server"] == f"{base}/v2/relative-path-server"  # relative: from the top
    assert endpoints["get_relative-operation-server"] == f"{base}/v3/relative-operation-server"
    assert endpoints["get_operation-server-variables"] == \
        f"{base}/s/operation.example.com/v3/operation-server-variables"  # variable default filled
    assert endpoints["get_path-item-server-source"] == f"{base}/s/path-item-ref.example.com/path-item-server-source"
    assert endpoints["get_empty-operation-servers"] == \
        f"{base}/s/empty-operation-path.example.com/empty-operation-servers"  # [] = not given
    assert endpoints["get_empty-path-item-servers"] == f"{base}/s/demo.example.com:443/v2/empty-path-item-servers"
    seen = call(gateway, "srv", "get_operation-server-variables", {})
    assert seen["target"] == "/s/operation.example.com/v3/operation-server-variables"
    seen = call(gateway, "srv", "get_path-item-server-source", {})
    assert seen["target"] == "/s/path-item-ref.example.com/path-item-server-source"


def test_one_of_any_of_and_nullable_arguments_are_accepted(gateway, documents):
    for value in ("text", 42):
        seen = call(gateway, "poly", "post_anything_one-of-primitive", {"body": value})
        assert json.loads(seen["body"]) == value  # neither alternative refused, none converted
    for value in ({"a": "1", "b": "2"}, {"c": "3"}):
        assert json.loads(call(gateway, "poly", "post_anything_any-of-object", {"body": value})["body"]) == value
    seen = call(gateway, "poly", "patch_pets", {"body": {"pet_type": "Cat", "hunts": True, "age": 3}})
    assert json.loads(seen["body"])["hunts"] is True
    seen = call(gateway, "poly", "post_anything_nested-one-of-object-ref", {"config": {"a": "x"}})
    assert json.loads(seen["body"]) == {"config": {"a": "x"}}
    assert refused(gateway, "poly", "post_anything_one-of-primitive", {"body": [1]})  # still validated
    seen = call(gateway, "bodies", "search", {"limit": None, "q": 5})
    assert seen["target"] == "/search?q=5"
    assert call(gateway, "bodies", "search", {"q": "five"})["target"] == "/search?q=five"


def test_security_schemes_send_their_credentials(gateway, documents):
    config = documents["sec"]["servers"][0]["config"]
    assert config["basic"] == 'Basic {{ env("SEC_BASIC") }}' and config["bearer"] == 'Bearer {{ env("SEC_BEARER") }}'
    seen = call(gateway, "sec", "get_anything_apiKey", {})
    assert seen["target"] == "/anything/apiKey?apiKey=q%26key"
    assert seen["headers"]["x-client"] == "mcpgw 12"  # a --header: every tool, through its config value
    assert call(gateway, "sec", "post_anything_apiKey", {})["headers"]["cookie"] == "api_key=cookie-key"
    assert call(gateway, "sec", "put_anything_apiKey", {})["headers"]["x-api-key"] == "header-key"
    assert call(gateway, "sec", "get_anything_optional-auth", {})["target"] == "/anything/optional-auth?apiKey=q%26key"
    seen = call(gateway, "sec", "post_anything_basic", {})
    assert seen["headers"]["authorization"] == "Basic dXNlcjpwYXNz"
    seen = call(gateway, "sec", "post_anything_bearer", {})
    assert seen["headers"]["authorization"] == "Bearer bearer-token"
    seen = call(gateway, "sec", "post_anything_no-auth", {})
    assert "authorization" not in seen["headers"]


def test_each_api_key_location(documents):
    tools = {t["name"]: t for t in documents["sec"]["tools"]}
    headers = [t.get("headers", {}) for t in tools.values()]
    endpoints = [t["endpoint"] for t in tools.values()]
    assert any(h.get("X-API-KEY") == "{{ config.apiKey_header }}" for h in headers)
    assert any(h.get("Cookie") == "api_key={{ config.apiKey_cookie }}" for h in headers)
    assert any(e.endswith("?apiKey={{ config.apiKey_query | urlencode }}") for e in endpoints)


def test_a_github_sized_description(gateway, documents, backend):
    tools = documents["big"]["tools"]
    names = [t["name"] for t in tools]
    assert len(names) == len(set(names)) == 1200
    assert all(d.TOOL_NAME_RE.match(n) for n in names)
    assert names[7].startswith("actions_set-selected-repositories-enabled-github-actions_") and len(names[7]) <= 64
    seen = call(gateway, "big", names[7], {"org": "my org", "repository_id": 3, "field_1": "v"})
    assert seen["target"] == "/orgs/my%20org/actions/permissions/selected-repositories-7/3?per_page=30"
    assert seen["headers"]["authorization"] == "Bearer big-token" and json.loads(seen["body"]) == {"field_1": "v"}


def test_json_is_parsed_as_json_and_fast(backend, monkeypatch):
    text = json.dumps(_github_sized(backend))
    import yaml

    monkeypatch.setattr(yaml, "load", lambda *a, **k: pytest.fail("a JSON spec went through the YAML parser"))
    start = time.perf_counter()
    spec = parse_spec_text(text, max_bytes=64 * 1024 * 1024)
    from_openapi(spec, name="big")
    assert time.perf_counter() - start < 30
    monkeypatch.undo()
    assert parse_spec_text(yaml.safe_dump({"openapi": "3.0.0", "paths": {}}))["openapi"] == "3.0.0"


def test_cli_header_and_config_options(tmp_path):
    spec = tmp_path / "sec.json"
    spec.write_text(json.dumps(example("3.0/json/security.json")))
    db = f"sqlite:///{tmp_path / 'gw.db'}"
    seed(db)  # a migrated, empty store
    result = CliRunner().invoke(cli, ["openapi", "import", str(spec), "--db", db, "--name", "sec",
                                      "--base-url", "http://127.0.0.1:9", "--header", "X-Tenant=acme",
                                      "--config", "bearer={{ secrets.SEC_TOKEN }}"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    from mcpgw_sdk.opening import open_store

    store = open_store(db)
    try:
        content = store.get_document("default", "sec").content
    finally:
        store.close()
    config = content["servers"][0]["config"]
    assert config["bearer"] == "{{ secrets.SEC_TOKEN }}" and config["X_Tenant"] == "acme"
    assert all(t["headers"]["X-Tenant"] == "{{ config.X_Tenant }}" for t in content["tools"])


def test_console_import_takes_headers_and_config_lines():
    from console import importing

    preview = importing.convert(json.dumps(example("3.0/json/security.json")), tenant="default", name="sec",
                                base_url="http://127.0.0.1:9", headers="X-Tenant=acme\n",
                                config="basic=Basic {{ secrets.SEC_BASIC }}")
    config = preview.content["servers"][0]["config"]
    assert config["X_Tenant"] == "acme" and config["basic"] == "Basic {{ secrets.SEC_BASIC }}"
    with pytest.raises(ConfigError, match="not NAME=VALUE"):
        importing.convert(json.dumps(example("3.0/json/security.json")), tenant="default", name="sec",
                          base_url="http://127.0.0.1:9", headers="X-Tenant")
