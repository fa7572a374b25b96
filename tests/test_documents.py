"""Config documents: parsing, validation messages, normalization, set checks, YAML and schemas."""

from __future__ import annotations

import copy
import json

import pytest

from mcpgw_sdk import ConfigError
from mcpgw_sdk import documents as d


def base() -> dict:
    """A small valid document with one REST server, two tools and one upstream MCP server."""
    return {
        "name": "users",
        "tenant": "default",
        "routers": [{"server": "users", "prefix": "/default/users"}],
        "servers": [{"name": "users", "allowedTools": ["get_user", "add_user"], "config": {"Token": "t"}}],
        "tools": [
            {"name": "get_user", "method": "GET", "endpoint": "http://127.0.0.1:1/users/{{ args.id }}",
             "args": [{"name": "id", "position": "path", "required": True, "type": "string"}]},
            {"name": "add_user", "method": "POST", "endpoint": "http://127.0.0.1:1/users",
             "args": [{"name": "email", "position": "body", "type": "string"}]},
        ],
        "mcpServers": [{"type": "stdio", "name": "files", "command": "python", "args": ["-V"]}],
    }


def errors_of(content: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        d.validate(content)
    return info.value.errors


def edit(fn):
    doc = base()
    fn(doc)
    return doc


CASES = [
    ("bad position", lambda c: c["tools"][1]["args"][0].update(position="bdy"),
     "default/users: tools[1].args[0].position: 'bdy' is not one of header, query, path, body, form-data, file"),
    ("unknown top key", lambda c: c.update(color="red"),
     "default/users: unknown key 'color'; allowed keys: name, tenant, routers, servers, tools, prompts, mcpServers"),
    ("unknown tool key", lambda c: c["tools"][0].update(verb="GET"),
     "default/users: tools[0]: unknown key 'verb'; allowed keys: name, description, method, endpoint,"),
    ("wrong type", lambda c: c["tools"][0].update(description=5),
     "default/users: tools[0].description: expected a string, got integer"),
    ("wrong list type", lambda c: c.update(tools={"a": 1}), "default/users: tools: expected a list, got mapping"),
    ("name required", lambda c: c.pop("name"), "default/?: name: required"),
    ("tenant not a string", lambda c: c.update(tenant=3), "tenant: expected a string, got integer"),
    ("tool name required", lambda c: c["tools"][0].pop("name"), "default/users: tools[0].name: required"),
    ("endpoint required", lambda c: c["tools"][0].pop("endpoint"), "default/users: tools[0].endpoint: required"),
    ("duplicate tool", lambda c: c["tools"][1].update(name="get_user"),
     "default/users: tools[1].name: duplicate tool name 'get_user' (also tools[0])"),
    ("duplicate server", lambda c: c["mcpServers"][0].update(name="users"),
     "default/users: mcpServers[0].name: duplicate server name 'users' (also servers[0])"),
    ("duplicate mcpServer", lambda c: c["mcpServers"].append(dict(c["mcpServers"][0])),
     "default/users: mcpServers[1].name: duplicate server name 'files' (also mcpServers[0])"),
    ("duplicate prompt", lambda c: c.update(prompts=[{"name": "p"}, {"name": "p"}]),
     "default/users: prompts[1].name: duplicate prompt name 'p' (also prompts[0])"),
    ("duplicate arg", lambda c: c["tools"][0]["args"].append({"name": "id", "position": "query"}),
     "default/users: tools[0].args[1].name: duplicate argument name 'id' (also tools[0].args[0])"),
    ("router to missing server", lambda c: c["routers"][0].update(server="nope"),
     "default/users: routers[0].server: 'nope' is not a server or mcpServer of this document (known: files, users)"),
    ("router servers missing", lambda c: c["routers"][0].update(server=None, servers=["users", "ghost"]),
     "default/users: routers[0].servers[1]: 'ghost' is not a server or mcpServer of this document"),
    ("router without backend", lambda c: c["routers"][0].pop("server"),
     "default/users: routers[0]: needs server (one backend) or servers (several aggregated)"),
    ("duplicate prefix", lambda c: c["routers"].append({"server": "files", "prefix": "/default/users/"}),
     "default/users: routers[1].prefix: '/default/users' is already used by routers[0].prefix"),
    ("prefix without slash", lambda c: c["routers"][0].update(prefix="default/users"),
     "default/users: routers[0].prefix: 'default/users' must start with '/'"),
    ("prefix bad segment", lambda c: c["routers"][0].update(prefix="/default/a b"),
     "default/users: routers[0].prefix: segment 'a b' may only hold A-Z a-z 0-9 . _ ~ -"),
    ("tool name chars", lambda c: c["tools"][0].update(name="get user"),
     "default/users: tools[0].name: 'get user' must be 1-64 characters of A-Z a-z 0-9 _ . -"),
    ("tool name length", lambda c: c["tools"][0].update(name="x" * 65),
     "default/users: tools[0].name: '" + "x" * 65 + "' must be 1-64 characters"),
    ("allowedTools missing tool", lambda c: c["servers"][0]["allowedTools"].append("del_user"),
     "default/users: servers[0].allowedTools[2]: 'del_user' is not a tool of this document"),
    ("endpoint template", lambda c: c["tools"][0].update(endpoint="http://x/{{ args.id }"),
     "default/users: tools[0].endpoint: template does not parse: unexpected '}' (line 1)"),
    ("header template", lambda c: c["tools"][0].update(headers={"X-A": "{% if %}"}),
     "default/users: tools[0].headers.X-A: template does not parse: Expected an expression"),
    ("requestBody template", lambda c: c["tools"][1].update(requestBody='{\n "a": {{ args.email }\n}'),
     "default/users: tools[1].requestBody: template does not parse: unexpected '}' (line 2)"),
    ("responseBody template", lambda c: c["tools"][1].update(responseBody="{% endif %}"),
     "default/users: tools[1].responseBody: template does not parse: Encountered unknown tag 'endif'"),
    ("config template", lambda c: c["servers"][0]["config"].update(Token="{{ env('X' }}"),
     "default/users: servers[0].config.Token: template does not parse:"),
    ("mcp env template", lambda c: c["mcpServers"][0].update(env={"K": "{{"}),
     "default/users: mcpServers[0].env.K: template does not parse:"),
    ("mcp headers template", lambda c: c["mcpServers"].append(
        {"type": "sse", "name": "r", "url": "http://x/sse", "headers": {"A": "{{ }}"}}),
     "default/users: mcpServers[1].headers.A: template does not parse:"),
    ("mcp url template", lambda c: c["mcpServers"].append({"type": "sse", "name": "r", "url": "http://{{ x"}),
     "default/users: mcpServers[1].url: template does not parse:"),
    ("mcp type", lambda c: c["mcpServers"][0].update(type="websocket"),
     "default/users: mcpServers[0].type: 'websocket' is not one of stdio, sse, streamable-http"),
    ("stdio needs command", lambda c: c["mcpServers"][0].pop("command"),
     "default/users: mcpServers[0].command: required for type stdio"),
    ("sse needs url", lambda c: c["mcpServers"].append({"type": "sse", "name": "r"}),
     "default/users: mcpServers[1].url: required for type sse"),
    ("streamable needs url", lambda c: c["mcpServers"].append({"type": "streamable-http", "name": "r"}),
     "default/users: mcpServers[1].url: required for type streamable-http"),
    ("policy", lambda c: c["mcpServers"][0].update(policy="always"),
     "default/users: mcpServers[0].policy: 'always' is not one of onStart, onDemand"),
    ("auth mode", lambda c: c["routers"][0].update(auth={"mode": "basic"}),
     "default/users: routers[0].auth.mode: 'basic' is not one of apikey, oauth2, none"),
    ("oauth2 needs issuer", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "audience": "a"}),
     "default/users: routers[0].auth.issuer: required for mode oauth2 (or give routers[0].auth.jwksUri)"),
    ("auth issuer url", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "issuer": "idp.example"}),
     "default/users: routers[0].auth.issuer: 'idp.example' is not an http(s) URL"),
    ("auth jwksUri scheme", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "jwksUri": "ftp://idp/jwks"}),
     "default/users: routers[0].auth.jwksUri: 'ftp://idp/jwks' is not an http(s) URL"),
    ("auth issuer type", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "issuer": ["https://idp"]}),
     "default/users: routers[0].auth.issuer: expected an http(s) URL, got list"),
    ("auth audience type", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "issuer": "https://idp",
                                                                   "audience": 5}),
     "default/users: routers[0].auth.audience: expected a string or a list of strings, got integer"),
    ("auth audience item", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "issuer": "https://idp",
                                                                   "audience": ["a", 2]}),
     "default/users: routers[0].auth.audience[1]: expected a non-empty string, got integer"),
    ("auth scopes item", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "issuer": "https://idp",
                                                                 "scopes": ["mcp:tools", ""]}),
     "default/users: routers[0].auth.scopes[1]: expected a non-empty string, got string ''"),
    ("auth unknown key", lambda c: c["routers"][0].update(auth={"mode": "oauth2", "issuer": "https://idp",
                                                                 "jwks": "https://idp/jwks"}),
     "default/users: routers[0].auth: unknown key 'jwks'; allowed keys: mode, issuer, jwksUri, audience, scopes"),
    ("timeout zero", lambda c: c["tools"][0].update(timeout=0), "default/users: tools[0].timeout: must be > 0, got 0"),
    ("timeout negative", lambda c: c["mcpServers"][0].update(timeout=-1),
     "default/users: mcpServers[0].timeout: must be > 0, got -1"),
    ("timeout type", lambda c: c["tools"][0].update(timeout="5s"),
     "default/users: tools[0].timeout: expected a number > 0, got string"),
    ("method", lambda c: c["tools"][0].update(method="FETCH"),
     "default/users: tools[0].method: 'FETCH' is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"),
    ("arg type", lambda c: c["tools"][0]["args"][0].update(type="str"),
     "default/users: tools[0].args[0].type: 'str' is not one of string, number, integer, boolean, array, object"),
    ("arg default", lambda c: c["tools"][1]["args"][0].update(type="integer", default="ten"),
     "default/users: tools[1].args[0].default: 'ten' is not an integer"),
    ("aggregated collision", lambda c: (c["servers"].append({"name": "users2", "toolPrefix": "users_"}),
                                         c["routers"][0].update(server=None, servers=["users", "users2"])),
     "default/users: routers[0]: tool name 'users_get_user' is exposed by both 'users' and 'users2'"),
    ("aggregated mcp prefix", lambda c: (c["mcpServers"].append({"type": "sse", "name": "r", "url": "http://x",
                                                                  "toolPrefix": ""}),
                                          c["mcpServers"][0].update(toolPrefix=""),
                                          c["routers"][0].update(server=None, servers=["files", "r"])),
     "default/users: routers[0].servers: servers 'files' and 'r' share the tool prefix ''"),
    ("aggregated name too long", lambda c: (c["servers"][0].update(toolPrefix="p" * 60),
                                             c["routers"][0].update(server=None, servers=["users", "files"])),
     "default/users: routers[0]: exposed tool name '" + "p" * 60 + "get_user' (from server 'users') must be"),
    ("server and servers", lambda c: c["routers"][0].update(servers=["users"]),
     "default/users: routers[0]: use either server or servers, not both"),
    ("disabled not a bool", lambda c: c["routers"][0].update(disabled="yes"),
     "default/users: routers[0].disabled: expected true or false, got string"),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validation_error_messages(change, expected):
    doc = edit(change)
    # None means "remove" in these edits, so the key counts as absent.
    for router in doc["routers"]:
        if router.get("server", "") is None:
            router.pop("server")
    errors = errors_of(doc)
    assert any(e.startswith(expected) or expected in e for e in errors), errors


@pytest.mark.parametrize("auth", [
    {"mode": "oauth2", "issuer": "https://idp.example", "audience": "https://mcp.example/default/users/mcp",
     "scopes": ["mcp:tools", "users:read"]},
    {"mode": "oauth2", "jwksUri": "http://127.0.0.1:9/jwks.json", "audience": ["a", "b"], "scopes": "mcp:tools x"},
    {"mode": "apikey"},
    {"mode": "none"},
    {},
])
def test_usable_auth_blocks_are_kept_as_written(auth):
    doc = base()
    doc["routers"][0]["auth"] = copy.deepcopy(auth)
    assert d.validate(doc)["routers"][0]["auth"] == auth
    assert d.auth_errors(auth) == []


def test_auth_errors_is_the_rule_set_of_validate():
    assert d.auth_errors(None) == []
    assert d.auth_errors("apikey") == ["auth: expected a mapping, got string"]
    assert d.auth_errors({"mode": "oauth2"}, "routers[0].auth") == [
        "routers[0].auth.issuer: required for mode oauth2 (or give routers[0].auth.jwksUri)"]
    assert d.auth_errors({"mode": "oauth2", "issuer": "idp"}) == ["auth.issuer: 'idp' is not an http(s) URL"]
    assert d.auth_errors({"mode": "basic"}) == ["auth.mode: 'basic' is not one of apikey, oauth2, none"]


def test_every_problem_is_reported_at_once():
    doc = base()
    doc["tools"][0]["args"][0]["position"] = "bdy"
    doc["routers"][0]["prefix"] = "nope"
    doc["mcpServers"][0]["policy"] = "never"
    errors = errors_of(doc)
    assert len(errors) == 3
    assert "\n".join(errors) == str(ConfigError("x", errors))


def test_valid_document_is_normalized_copy():
    raw = base()
    raw["createdAt"], raw["updatedAt"], raw["deletedAt"] = "2025-01-01T00:00:00Z", "x", "y"
    raw.pop("tenant")
    raw["routers"][0]["prefix"] = "/default//users/"
    raw["tools"][0]["method"] = "get"
    raw["tools"][1]["args"].append({"name": "n", "type": "integer", "default": 5})
    raw["tools"][0]["args"].append({"name": "q"})
    raw["servers"][0]["config"]["Cookie"] = 123
    raw_copy = copy.deepcopy(raw)
    doc = d.validate(raw)
    assert raw == raw_copy  # the input is untouched
    assert doc["tenant"] == "default" and "createdAt" not in doc and "deletedAt" not in doc
    assert doc["routers"][0]["prefix"] == "/default/users"
    assert doc["tools"][0]["method"] == "GET"
    assert doc["tools"][1]["args"][1] == {"name": "n", "position": "body", "required": False, "type": "integer",
                                          "default": "5"}
    assert doc["tools"][0]["args"][1]["position"] == "query"  # GET tools default to query
    assert doc["servers"][0]["config"]["Cookie"] == "123"
    assert doc["prompts"] == [] and doc["mcpServers"][0]["policy"] == "onDemand"
    assert d.validate(doc) == doc  # normalizing twice changes nothing


def test_unla_keys_are_accepted():
    doc = base()
    doc["servers"][0]["namespace"] = "user-service"
    doc["routers"][0].update(ssePrefix="/default/users", cors={"allowOrigins": ["*"], "allowCredentials": True})
    doc["mcpServers"][0].update(preinstalled=True, allowAuthorizationPassThrough=True)
    doc["tools"][0]["args"][0]["items"] = {"type": "string", "enum": ["a"]}
    doc["tools"][0]["proxy"] = {"host": "127.0.0.1", "port": 8080, "type": "socks5"}
    assert d.validate(doc)["routers"][0]["cors"]["allowCredentials"] is True


def test_malformed_yaml_names_source_line_and_column():
    text = "name: users\ntools:\n  - name: a\n    endpoint: [unclosed\n"
    with pytest.raises(ConfigError) as info:
        d.parse_text(text, source="users.yaml")
    message = str(info.value)
    assert message.startswith("users.yaml: line ")
    assert "column" in message
    line = int(message.split("line ")[1].split(",")[0])
    assert 4 <= line <= 5


def test_malformed_json_names_line_and_column():
    with pytest.raises(ConfigError) as info:
        d.parse_text('{"name": "a",\n  "tools": [1,, 2]}', source="a.json")
    assert str(info.value).startswith("a.json: line 2, column")


def test_parse_streams_lists_and_json():
    assert [x["name"] for x in d.parse_text("name: a\n---\nname: b\n---\n")] == ["a", "b"]
    assert [x["name"] for x in d.parse_text('[{"name": "a"}, {"name": "b"}]')] == ["a", "b"]
    assert d.parse_text("name: a\ncreatedAt: 2025-01-01T00:00:00Z\n")[0]["createdAt"] == "2025-01-01T00:00:00Z"
    with pytest.raises(ConfigError, match="x.yaml: document 2 is string"):
        d.parse_text("name: a\n---\njust text\n", source="x.yaml")


def test_key_prefixes_hash_and_canonical_json():
    doc = base()
    assert d.key(doc) == ("default", "users")
    assert d.key({"name": "n"}) == ("default", "n")
    doc["routers"].append({"server": "files", "prefix": "files//x/"})
    assert d.prefixes(doc) == ["/default/users", "/files/x"]
    reordered = dict(reversed(list(doc.items())))
    assert d.canonical_json(reordered) == d.canonical_json(doc)
    assert d.content_hash(reordered) == d.content_hash(doc)
    assert len(d.content_hash(doc)) == 64
    doc["name"] = "other"
    assert d.content_hash(doc) != d.content_hash(reordered)
    assert json.loads(d.canonical_json(doc)) == doc


def test_to_yaml_order_and_round_trip():
    doc = d.validate(base())
    doc["tools"][1]["requestBody"] = '{\n  "email": "{{ args.email }}"\n}'
    text = d.to_yaml(doc)
    top = [line.split(":")[0] for line in text.splitlines() if line and not line.startswith((" ", "-"))]
    assert top == ["name", "tenant", "routers", "servers", "tools", "mcpServers"]  # empty prompts left out
    assert "requestBody: |-" in text
    assert d.validate(d.parse_text(text)[0]) == doc


def test_validate_set():
    a = d.validate(base())
    b = d.validate(edit(lambda c: c.update(name="other")))
    c = d.validate(edit(lambda c: (c.update(name="third", tenant="acme"),
                                   c["routers"][0].update(prefix="/elsewhere/x"))))
    e = d.validate(edit(lambda c: (c.update(name="lost", tenant="ghost"), c["routers"][0].update(prefix="/g"))))
    tenants = {"default": "/default", "acme": "/acme"}
    problems = d.validate_set([a, b, c, e], tenants)
    assert problems[("default", "users")] == [
        "default/users: routers[0].prefix: '/default/users' is also used by default/other"]
    assert problems[("default", "other")] == [
        "default/other: routers[0].prefix: '/default/users' is also used by default/users"]
    assert problems[("acme", "third")] == [
        "acme/third: routers[0].prefix: '/elsewhere/x' is outside tenant 'acme''s prefix '/acme'"]
    assert problems[("ghost", "lost")] == ["ghost/lost: tenant: tenant 'ghost' does not exist (known: acme, default)"]
    assert d.validate_set([a], tenants) == {}
    assert d.validate_set([a], {"default": "/"}) == {}
    # A prefix equal to the tenant's own prefix is inside it; a sibling with the same start is not.
    inside = edit(lambda c: c["routers"][0].update(prefix="/default"))
    sibling = edit(lambda c: c["routers"][0].update(prefix="/defaultish/x"))
    assert d.validate_set([inside], tenants) == {}
    assert ("default", "users") in d.validate_set([sibling], tenants)


def test_disabled_router_is_kept_and_still_reserves_its_prefix():
    plain = d.validate(base())
    assert "disabled" not in plain["routers"][0]  # absent stays absent: old documents keep their hash
    off = d.validate(edit(lambda c: c["routers"][0].update(disabled=True)))
    assert off["routers"][0]["disabled"] is True
    assert d.prefixes(off) == d.disabled_prefixes(off) == ["/default/users"]
    assert d.disabled_prefixes(d.validate(edit(lambda c: c["routers"][0].update(disabled=False)))) == []
    assert d.content_hash(off) != d.content_hash(plain)
    other = d.validate(edit(lambda c: c.update(name="other")))
    problems = d.validate_set([off, other], {"default": "/default"})
    assert problems[("default", "other")] == [
        "default/other: routers[0].prefix: '/default/users' is also used by default/users"]
    assert "disabled: true" in d.to_yaml(off)


def test_tool_input_schema():
    tool = {"name": "t", "endpoint": "http://x", "args": [
        {"name": "q", "type": "string", "required": True, "description": "Query", "default": ""},
        {"name": "n", "type": "integer", "default": "20"},
        {"name": "f", "type": "number", "default": "1.5"},
        {"name": "on", "type": "boolean", "default": "false"},
        {"name": "tags", "type": "array", "default": '["a"]', "items": {"type": "string", "enum": ["a", "b", "a"]}},
        {"name": "obj", "type": "object", "default": '{"k": 1}'},
        {"name": "color", "type": "string", "enum": ["red", "blue"]},
    ], "inputSchema": {"extra": {"type": "string"}}}
    schema = d.tool_input_schema(tool)
    assert schema["type"] == "object" and schema["required"] == ["q"]
    props = schema["properties"]
    assert props["q"] == {"type": "string", "description": "Query"}  # an empty default is no default
    assert props["n"]["default"] == 20 and props["f"]["default"] == 1.5 and props["on"]["default"] is False
    assert props["tags"] == {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "default": ["a"]}
    assert props["obj"]["default"] == {"k": 1}
    assert props["color"]["enum"] == ["red", "blue"]
    assert props["extra"] == {"type": "string"}
    full = d.tool_input_schema({"args": [{"name": "a", "required": True}],
                                "inputSchema": {"type": "object", "properties": {"b": {"type": "integer"}},
                                                "required": ["b"], "additionalProperties": False}})
    assert full["required"] == ["a", "b"] and full["additionalProperties"] is False
    assert set(full["properties"]) == {"a", "b"}
    assert d.tool_input_schema({"name": "empty"}) == {"type": "object", "properties": {}}


def test_visible_tools():
    doc = d.validate(base())
    router = doc["routers"][0]
    assert d.visible_tools(doc, router) == [("get_user", "users", "get_user"), ("add_user", "users", "add_user")]
    doc["servers"][0]["deniedTools"] = ["add_user"]
    assert d.visible_tools(doc, router) == [("get_user", "users", "get_user")]
    doc["servers"].append({"name": "admin", "allowedTools": ["add_user"]})
    agg = {"servers": ["users", "files", "admin"], "prefix": "/default/all"}
    assert d.visible_tools(doc, agg) == [("users_get_user", "users", "get_user"),
                                         ("admin_add_user", "admin", "add_user")]
    doc["servers"][1]["toolPrefix"] = ""
    assert d.visible_tools(doc, agg)[1] == ("add_user", "admin", "add_user")
    doc["servers"][0].pop("allowedTools")
    doc["servers"][0].pop("deniedTools")
    assert [v[0] for v in d.visible_tools(doc, router)] == ["get_user", "add_user"]  # no allowedTools: all tools


def test_iter_templates_covers_every_template_field():
    doc = base()
    doc["tools"][0].update(headers={"A": "a"}, requestBody="b", responseBody="c")
    doc["mcpServers"].append({"type": "sse", "name": "r", "url": "u", "headers": {"H": "h"}})
    doc["mcpServers"][0]["env"] = {"E": "e"}
    paths = [p for p, _c, _k in d.iter_templates(doc)]
    assert paths == ["servers[0].config.Token", "tools[0].endpoint", "tools[0].requestBody",
                     "tools[0].responseBody", "tools[0].headers.A", "tools[1].endpoint", "mcpServers[0].env.E",
                     "mcpServers[1].url", "mcpServers[1].headers.H"]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def test_any_wrong_value_is_a_config_error_never_a_crash():
    sample = base()
    sample["routers"].append({"servers": ["users", "files"], "prefix": "/default/all", "auth": {"mode": "none"},
                              "cors": {"allowOrigins": ["*"]}})
    sample["prompts"] = [{"name": "p", "arguments": [{"name": "a"}],
                          "promptResponse": [{"role": "user", "content": {"type": "text", "text": "x"}}]}]
    checked = 0
    for path in list(_paths(sample))[1:]:
        for wrong in (None, 7, "text", [], {}, [1], {"name": 1}, True):
            doc = copy.deepcopy(sample)
            target = doc
            for step in path[:-1]:
                target = target[step]
            target[path[-1]] = wrong
            try:
                result = d.validate(doc)
            except ConfigError as exc:
                assert exc.errors and all(e.startswith(("default/", "?/")) or "/" in e for e in exc.errors)
            else:
                assert isinstance(result, dict)
            checked += 1
    assert checked > 300


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 100_000, "a: " + "[" * 20_000,
                                  "".join(f"{' ' * i}k:\n" for i in range(3000))])
def test_deeply_nested_text_is_a_config_error_naming_the_source(text):
    with pytest.raises(ConfigError, match=r"^deep\.yaml: .*nested too deeply"):
        d.parse_text(text, source="deep.yaml")
