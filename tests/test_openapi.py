"""OpenAPI import: Swagger 2.0, OpenAPI 3.0 and 3.1 specs with $refs, enums, defaults and name clashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mcpgw_sdk import ConfigError
from mcpgw_sdk import documents as d
from mcpgw_sdk.openapi import from_openapi, load_spec
from tests.helpers import free_port, python, wait_http

DATA = Path(__file__).parent / "data"


def tools_of(doc: dict) -> dict[str, dict]:
    return {t["name"]: t for t in doc["tools"]}


def args_of(tool: dict) -> dict[str, dict]:
    return {a["name"]: a for a in tool.get("args", [])}


def test_swagger_2():
    doc = from_openapi(load_spec(str(DATA / "petstore-swagger2.yaml")), name="pets")
    assert d.validate(doc) == doc
    tools = tools_of(doc)
    assert list(tools) == ["listPets", "createPet", "showPet", "showPet_2", "post_pets_petId_photo"]
    assert doc["servers"] == [{"name": "pets", "description": "Petstore (Swagger 2.0)", "allowedTools": list(tools)}]
    assert doc["routers"] == [{"server": "pets", "prefix": "/default/pets"}]
    listing = args_of(tools["listPets"])
    assert tools["listPets"]["endpoint"] == "https://pets.example.com/v1/pets"
    assert listing["limit"] == {"name": "limit", "position": "query", "required": False, "type": "integer",
                                "description": "How many pets to return", "default": "20"}
    assert listing["status"]["items"] == {"type": "string", "enum": ["available", "pending", "sold"]}
    create = args_of(tools["createPet"])
    assert create["X-Trace-Id"]["position"] == "header"  # from a $ref'd parameter
    assert create["name"]["required"] is True and create["name"]["position"] == "body"
    assert create["kind"]["enum"] == ["cat", "dog"] and create["kind"]["default"] == "cat"
    assert create["vaccinated"]["default"] == "false"
    assert create["owner"]["type"] == "object"  # $ref to a definition that refers back (a cycle, cut)
    assert tools["showPet"]["endpoint"] == "https://pets.example.com/v1/pets/{{ args.petId }}"
    assert tools["showPet"]["method"] == "GET" and tools["showPet_2"]["method"] == "DELETE"
    photo = args_of(tools["post_pets_petId_photo"])
    assert photo["photo"]["position"] == "file" and photo["caption"]["position"] == "form-data"


def test_openapi_3_0():
    doc = from_openapi(load_spec(str(DATA / "users-openapi30.json")), name="users", tenant="acme",
                       prefix="/acme/people")
    assert d.validate(doc) == doc
    assert doc["tenant"] == "acme" and doc["routers"][0]["prefix"] == "/acme/people"
    tools = tools_of(doc)
    assert list(tools) == ["get_users", "register_user", "setTags", "getUser"]
    listing = args_of(tools["get_users"])
    assert tools["get_users"]["endpoint"] == "http://127.0.0.1:5236/api/users"  # server variables filled
    assert listing["page"] == {"name": "page", "position": "query", "required": False, "type": "integer",
                               "description": "Page number", "default": "1"}
    assert listing["role"]["enum"] == ["admin", "member"] and listing["role"]["default"] == "member"
    assert "session" not in listing  # cookie parameters have no position
    register = args_of(tools["register_user"])
    assert list(register) == ["username", "email", "manager", "preferences"]  # readOnly id left out
    assert register["email"]["required"] is True and register["manager"]["type"] == "object"
    assert register["preferences"]["items"]["properties"]["theme"]["enum"] == ["light", "dark"]
    tags = tools["setTags"]
    assert tags["endpoint"] == 'http://127.0.0.1:5236/api/users/{{ args["user-id"] }}/tags'
    assert args_of(tags)["user-id"]["type"] == "integer"
    assert args_of(tags)["body"]["items"]["enum"] == ["dev", "ops"]
    assert tags["requestBody"] == "{{ args.body | tojson }}"
    schema = d.tool_input_schema(tools["register_user"])
    assert schema["required"] == ["username", "email"]
    assert schema["properties"]["preferences"]["properties"]["theme"]["default"] == "light"


def test_openapi_3_1():
    doc = from_openapi(load_spec(str(DATA / "notes-openapi31.yaml")), name="notes")
    assert d.validate(doc) == doc
    tools = tools_of(doc)
    assert list(tools) == ["notes.list", "notes.create", "notes.list_2"]
    assert tools["notes.list"]["endpoint"] == "https://notes.example.com/api/notes"
    listing = args_of(tools["notes.list"])
    assert listing["tag"]["type"] == "string" and listing["tag"]["default"] == "work"  # type: [string, "null"]
    create = args_of(tools["notes.create"])
    assert create["priority"]["type"] == "integer" and create["priority"]["enum"] == [1, 2, 3]
    assert d.tool_input_schema(tools["notes.create"])["properties"]["priority"]["default"] == 2
    assert create["parent"]["type"] == "object"
    patch = args_of(tools["notes.list_2"])
    assert patch["attachment"]["position"] == "file" and patch["title"]["position"] == "form-data"


def test_base_url_and_names():
    spec = {"openapi": "3.0.0", "info": {"title": "T"}, "servers": [{"url": "/relative"}], "paths": {
        "/a/{id}": {"get": {"operationId": "x" * 70}, "post": {"operationId": "x" * 70}},
        "/b": {"get": {"operationId": "weird name/with:chars"}},
    }}
    with pytest.raises(ConfigError, match="relative; pass base_url"):
        from_openapi(spec, name="t")
    doc = from_openapi(spec, name="t", base_url="http://127.0.0.1:9/base/")
    names = [t["name"] for t in doc["tools"]]
    short = "x" * 57 + "_" + hashlib.sha1(("x" * 70).encode()).hexdigest()[:6]  # cut, plus a hash of the whole id
    assert names == [short, short[:62] + "_2", "weird_name_with_chars"]
    assert doc["tools"][0]["endpoint"] == "http://127.0.0.1:9/base/a/{{ args.id }}"
    assert from_openapi(spec, name="t", base_url="http://h") == from_openapi(spec, name="t", base_url="http://h")


def test_errors():
    with pytest.raises(ConfigError, match="not an OpenAPI or Swagger document"):
        load_spec("just: yaml\n")
    with pytest.raises(ConfigError, match="line 2, column"):
        load_spec('{"openapi": "3.0.0",\n  "paths": [}')
    with pytest.raises(ConfigError, match="pass base_url"):
        from_openapi({"swagger": "2.0", "paths": {}}, name="t")
    with pytest.raises(ConfigError, match="only '#/...' references are supported"):
        from_openapi({"openapi": "3.0.0", "servers": [{"url": "http://h"}], "paths": {
            "/a": {"get": {"parameters": [{"$ref": "other.yaml#/p"}]}}}}, name="t")


def test_load_spec_from_text_file_and_url(procs):
    text = (DATA / "users-openapi30.json").read_text()
    assert load_spec(text) == json.loads(text)
    assert load_spec(str(DATA / "users-openapi30.json")) == json.loads(text)
    port = free_port()
    procs.start([python(), "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(DATA)],
                name="specs")
    wait_http(f"http://127.0.0.1:{port}/", status=200)
    assert load_spec(f"http://127.0.0.1:{port}/notes-openapi31.yaml")["openapi"] == "3.1.0"
    with pytest.raises(ConfigError, match="cannot fetch the spec"):
        load_spec(f"http://127.0.0.1:{port}/missing.yaml")
    doc = from_openapi(f"http://127.0.0.1:{port}/petstore-swagger2.yaml", name="pets")
    assert len(doc["tools"]) == 5
