"""The typed config model: one default per field, shared by the validator and proved by docs/config-format.md."""

from __future__ import annotations

import dataclasses
import re

from mcpgw_sdk import config_model as model
from mcpgw_sdk import documents
from mcpgw_sdk.config_model import default, model_fields, stored_defaults
from tests.helpers import ROOT

#: How docs/config-format.md names each kind of field the validator checks.
DOC_TYPES = {"str": "string", "url": "URL", "strs": "string or list", "bool": "boolean", "int": "integer",
             "posint": "integer > 0", "count": "integer ≥ 0", "posnum": "number > 0", "strlist": "list of strings",
             "strmap": "map of strings", "object": "mapping", "obj": "mapping", "list": "list", "value": "any",
             "objmap": "map of mappings", "default": "string"}

#: The page's sections (``### `title```) and the model type each one documents.
SECTIONS = {
    "document": model.Document, "routers[]": model.Router, "routers[].cors": model.Cors,
    "routers[].auth": model.Auth, "routers[].cache": model.Cache, "routers[].tools.<name>": model.Shape,
    "routers[].tools.<name>.arguments.<arg>": model.ShapeArg, "servers[]": model.RestServer,
    "servers[].tokenExchange": model.TokenExchange, "tools[]": model.Tool, "tools[].args[]": model.Arg,
    "tools[].annotations": model.Annotations, "tools[].proxy": model.Proxy, "tools[].elicit": model.Elicit,
    "prompts[]": model.Prompt, "prompts[].arguments[]": model.PromptArg,
    "prompts[].promptResponse[]": model.PromptMessage, "prompts[].promptResponse[].content": model.PromptContent,
    "mcpServers[]": model.McpServer,
}


def _literal(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    if isinstance(value, tuple | list):
        return ", ".join(f"`{v}`" for v in value) if value else "`[]`"
    if isinstance(value, dict) or dataclasses.is_dataclass(value):
        return "`{}`"
    if value == "":
        return '`""`'
    return f"`{value}`"


def _default_text(cls: type, f: dataclasses.Field) -> str:
    if f.metadata["required"]:
        return "required"
    text = f.metadata["computed"] or _literal(default(cls, f.metadata["key"]))
    return f"**{text}**" if f.metadata["stored"] else text


def _tables() -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [type, default, meaning]}}`` of the tables under ``## Keys``."""
    text = (ROOT / "docs" / "config-format.md").read_text()
    keys = text.split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    out: dict[str, dict[str, list[str]]] = {}
    for title, body in re.findall(r"^### `([^`]+)`\n(.*?)(?=^### |\Z)", keys, re.M | re.S):
        rows = {}
        for line in body.splitlines():
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            if len(cells) == 4 and cells[0].startswith("`"):
                rows[cells[0].strip("`")] = cells[1:]
        out[title] = rows
    return out


def test_the_schema_and_the_model_name_the_same_fields_in_the_same_order():
    assert set(documents.SCHEMAS) == set(SECTIONS.values())
    for cls, table in documents.SCHEMAS.items():
        assert [f.metadata["key"] for f in model_fields(cls)] == list(table), cls.__name__


def test_the_validator_requires_exactly_what_the_model_requires():
    for cls, table in documents.SCHEMAS.items():
        assert {k for k, spec in table.items() if spec.required} == \
            {f.metadata["key"] for f in model_fields(cls) if f.metadata["required"]}, cls.__name__


def test_the_validator_stores_exactly_the_model_defaults():
    for cls, table in documents.SCHEMAS.items():
        stored = stored_defaults(cls)
        given = {key: spec.default for key, spec in table.items() if spec.default is not None}
        assert given == stored, cls.__name__
        for key, value in stored.items():  # and each one is the model's own default
            assert value == (list(default(cls, key)) if isinstance(default(cls, key), tuple) else default(cls, key))


def test_a_bare_document_loads_with_every_model_default():
    doc = documents.load({"name": "d", "routers": [{"server": "s", "prefix": "/d"}], "servers": [{"name": "s"}],
                          "tools": [{"name": "t", "endpoint": "http://x", "args": [{"name": "a"}]},
                                    {"name": "p", "method": "post", "endpoint": "http://x", "args": [{"name": "b"}]}],
                          "prompts": [{"name": "q", "promptResponse": [{"content": {"text": "hi"}}]}],
                          "mcpServers": [{"type": "stdio", "name": "m", "command": "m"},
                                         {"type": "streamable-http", "name": "h", "url": "http://h"}]})
    assert (doc.tenant, doc.key) == ("default", "default/d")
    assert doc.tools[0].method == "GET" and doc.tools[1].method == "POST"
    assert [a.position for t in doc.tools for a in t.args] == ["query", "body"]
    assert doc.tools[0].args[0] == model.Arg(name="a", position="query")
    assert doc.tools[0].timeout is None and doc.tools[0].retries == 0 and doc.tools[0].headers == {}
    assert [m.policy for m in doc.mcp_servers] == ["onDemand", "onDemand"]
    assert [m.era for m in doc.mcp_servers] == ["legacy", "auto"]
    assert doc.mcp_servers[0].timeout == 30.0 and doc.mcp_servers[0].allowed_tools is None
    router = doc.routers[0]
    assert (router.mode, router.backends, router.cache, router.disabled) == ("none", ("s",), model.Cache(), False)
    assert router.cache.ttl_ms == 60000 and router.cache.read_ttl_ms == 0
    message = doc.prompts[0].prompt_response[0]
    assert (message.role, message.content.type, message.content.text) == ("user", "text", "hi")
    assert doc.server("m") is doc.mcp_servers[0] and doc.server("s") is doc.servers[0]


def test_load_keeps_the_stored_form_unchanged():
    content = {"name": "d", "tenant": "acme", "routers": [{"server": "s", "prefix": "/acme/d/"}],
               "servers": [{"name": "s", "config": {"n": 1}}],
               "tools": [{"name": "t", "endpoint": "http://x", "args": [{"name": "a", "default": 5}]}]}
    stored = documents.validate(content)
    assert stored == {"name": "d", "tenant": "acme", "routers": [{"server": "s", "prefix": "/acme/d"}],
                      "servers": [{"name": "s", "config": {"n": "1"}}],
                      "tools": [{"name": "t", "method": "GET", "endpoint": "http://x",
                                 "args": [{"name": "a", "position": "query", "required": False, "type": "string",
                                           "default": "5"}]}],
                      "prompts": [], "mcpServers": []}
    doc = documents.load(content)
    assert doc.raw == stored and documents.content_hash(doc.raw) == documents.content_hash(stored)
    assert doc.tools[0].raw is doc.raw["tools"][0] and doc.servers[0].config == {"n": "1"}


def test_absent_keys_take_the_model_defaults_outside_validation_too():
    upstream = model.McpServer.from_dict({"command": "x"})
    assert (upstream.type, upstream.policy, upstream.era) == ("stdio", "onDemand", "legacy")
    tool = model.Tool.from_dict({"name": "t", "method": "DELETE", "args": [{"name": "a"}, {"name": "b", "position": "path"}]})
    assert [a.position for a in tool.args] == ["query", "path"]
    assert model.TokenExchange.from_dict({"tokenEndpoint": "http://as"}).header == "Authorization"
    assert model.Router.from_dict({"prefix": "/p", "auth": {}}).auth is None  # an empty block is no block


def test_the_config_format_page_documents_every_field_with_its_type_and_default():
    tables = _tables()
    assert set(tables) == set(SECTIONS), "docs/config-format.md: sections under ## Keys"
    problems = []
    for title, cls in SECTIONS.items():
        rows, schema = tables[title], documents.SCHEMAS[cls]
        keys = [f.metadata["key"] for f in model_fields(cls)]
        problems += [f"{title}: {k} is not documented" for k in keys if k not in rows]
        problems += [f"{title}: {k} is documented but not in the model" for k in rows if k not in keys]
        for f in model_fields(cls):
            key = f.metadata["key"]
            if key not in rows:
                continue
            type_, shown_default, meaning = rows[key]
            if type_ != DOC_TYPES[schema[key].kind]:
                problems.append(f"{title}: {key}: type {type_!r}, the model says {DOC_TYPES[schema[key].kind]!r}")
            if (shown_default.replace("`", "") if f.metadata["computed"] else shown_default) != _default_text(cls, f):
                problems.append(f"{title}: {key}: default {shown_default!r}, the model says {_default_text(cls, f)!r}")
            for choice in schema[key].choices or ():
                if f"`{choice}`" not in meaning:
                    problems.append(f"{title}: {key}: the choice {choice!r} is not listed")
    assert not problems, "\n".join(problems)


def test_router_shapings_load_as_model_types():
    router = model.Router.from_dict({"prefix": "/p", "tools": {"t": {"name": "u", "hidden": True,
                                                                      "arguments": {"a": {"fixed": 1}, "b": {}}}}})
    shaping = router.tools["t"]
    assert (shaping.name, shaping.hidden, shaping.annotations) == ("u", True, None)
    assert shaping.arguments == {"a": model.ShapeArg(fixed=1), "b": model.ShapeArg()}
    assert model.Router.from_dict({"prefix": "/p"}).tools == {}


def test_no_consumer_re_defaults_what_the_model_decides():
    keys = r"(policy|position|era|mode|ttlMs|readTtlMs|header|timeout)"
    literal = r"""(\)\s*or\s*|,\s*)["']"""  # .get(key) or "x" / .get(key, "x")
    pattern = re.compile("|".join([
        rf"""\.get\(["']{keys}["']\)\s*or\s*["'\d]""",
        rf"""\.get\(["']method["']{literal}(GET|POST)""",  # a JSON-RPC message's method is another matter
        rf"""\.get\(["']tenant["']{literal}{model.DEFAULT_TENANT}""",
        rf"""\.get\(["']type["']{literal}({"|".join(model.MCP_TYPES)})["']""",
        rf"""tenant: str = ["']{model.DEFAULT_TENANT}["']""",
    ]))
    found = []
    for folder in ("gateway_server", "mcpgw_sdk", "console"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "read these from mcpgw_sdk.config_model instead:\n" + "\n".join(found)


def test_the_forms_and_builders_offer_the_model_choices():
    from console import editing
    from mcpgw_sdk import builders

    assert set(editing.ARG_POSITIONS) == set(model.POSITIONS) == set(builders.ARG_POSITIONS)
    assert set(editing.ARG_TYPES) == set(model.ARG_TYPES)
    assert set(editing.HTTP_METHODS) <= set(model.METHODS) == set(builders.HTTP_METHODS)
    assert editing.args_to_rows({"method": "POST", "args": [{"name": "a"}]})[0]["position"] == "body"


def test_roles_are_defined_once():
    from gateway_server.api.openapi import ROLE
    from mcpgw_sdk.records import DEFAULT_ROLE, ROLES

    assert tuple(ROLE["enum"]) == ROLES and DEFAULT_ROLE in ROLES
    # no module spells a role out again: they import it
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in [*root.glob("mcpgw_sdk/**/*.py"), *root.glob("gateway_server/**/*.py"), *root.glob("console/**/*.py")]:
        if path.name == "records.py":
            continue
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith(">>>"))
        assert not re.search(r"role\s*[!=]=\s*[\"']admin|[!=]=\s*[\"']admin[\"']", code), path
