"""Tool shaping (``routers[].tools``) on a REST tool and an upstream MCP tool, over both MCP eras.

One gateway aggregates a REST server (a recording backend in this process) and the conformance
fixture (stdio) under one prefix, and reshapes both: ``api_search`` becomes ``find_issues`` with a
title, a description, an annotation, a new argument description, a default and a fixed hidden
``org``; ``fixture_echo`` becomes ``say`` with its ``text`` fixed; ``api_delete_all`` and
``fixture_test_sampling`` are hidden. The official Python client (``mcp`` 2.3.0) in ``legacy`` and
``2026-07-28`` modes sees the shaped tools; the backends receive the original names and fixed values.
"""

from __future__ import annotations

import asyncio
import json
import sys

import pytest
import requests

from mcpgw_sdk import documents
from mcpgw_sdk.errors import ConfigError
from tests.fixtures_gateway import FIXTURE, run_gateway, seed
from tests.helpers import Procs, RecordingBackend
from tests.test_mrtr import MODERN

PREFIX = "/gateway/shaped"
SHAPES = {
    "api_search": {"name": "find_issues", "title": "Find issues", "description": "Search acme's issues",
                   "arguments": {"org": {"fixed": "acme"}, "q": {"description": "What to look for"},
                                 "limit": {"default": 5}},
                   "annotations": {"readOnlyHint": True}},
    "api_delete_all": {"hidden": True},
    "fixture_echo": {"name": "say", "description": "Says the configured words",
                     "arguments": {"text": {"fixed": "fixed words"}}},
    "fixture_test_sampling": {"hidden": True},
    "fixture_no_such_tool": {"name": "ghost"},  # only an upstream could have it: reported at load
}


def _document(base: str) -> dict:
    return {
        "name": "shaped", "tenant": "default",
        "routers": [{"prefix": PREFIX, "servers": ["api", "fixture"], "tools": SHAPES}],
        "servers": [{"name": "api"}],
        "tools": [
            {"name": "search", "description": "Search issues", "method": "GET", "endpoint": f"{base}/search",
             "args": [{"name": "org", "position": "query", "required": True},
                      {"name": "q", "position": "query", "required": True, "description": "query"},
                      {"name": "limit", "position": "query", "type": "integer"}]},
            {"name": "delete_all", "method": "DELETE", "endpoint": f"{base}/all"},
        ],
        "mcpServers": [{"name": "fixture", "type": "stdio", "command": sys.executable, "args": [FIXTURE]}],
    }


@pytest.fixture(scope="module")
def shaped(tmp_path_factory):
    with RecordingBackend() as backend, Procs(tmp_path_factory.mktemp("shaping")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        gw = run_gateway(procs, url, revision=seed(url, _document(backend.url)))
        yield gw, backend


@pytest.mark.parametrize("mode", ["legacy", MODERN])
def test_clients_of_both_eras_see_and_call_the_shaped_tools(shaped, mode):
    from mcp import Client

    gw, backend = shaped
    backend.clear()

    async def main():
        async with Client(gw.mcp_url(PREFIX), mode=mode) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            found = await client.call_tool("find_issues", {"q": "bug"})
            overridden = await client.call_tool("find_issues", {"q": "bug", "limit": 2, "org": "evil"})
            said = await client.call_tool("say", {})
            try:
                hidden = await client.call_tool("api_delete_all", {})
            except Exception as exc:  # noqa: BLE001 - an unknown tool may be a protocol error or a tool error
                hidden = exc
            return tools, found, overridden, said, hidden

    tools, found, overridden, said, hidden = asyncio.run(main())
    assert "find_issues" in tools and "say" in tools, sorted(tools)
    for gone in ("api_search", "api_delete_all", "fixture_echo", "fixture_test_sampling", "ghost"):
        assert gone not in tools, sorted(tools)
    issues = tools["find_issues"]
    assert issues.title == "Find issues" and issues.description == "Search acme's issues"
    assert issues.annotations.read_only_hint is True
    schema = issues.input_schema
    assert set(schema["properties"]) == {"q", "limit"} and schema["required"] == ["q"], schema
    assert schema["properties"]["q"]["description"] == "What to look for"
    assert schema["properties"]["limit"]["default"] == 5
    assert "text" not in tools["say"].input_schema.get("properties", {}), tools["say"].input_schema

    assert not found.is_error, found
    assert json.loads(found.content[0].text)["query"] == {"org": "acme", "q": "bug", "limit": "5"}
    assert not overridden.is_error, overridden  # a client cannot set a fixed argument
    assert json.loads(overridden.content[0].text)["query"] == {"org": "acme", "q": "bug", "limit": "2"}
    assert not said.is_error and said.content[0].text == "fixed words", said
    assert isinstance(hidden, Exception) or hidden.is_error, hidden
    assert [r["path"] for r in backend.seen] == ["/search", "/search"], backend.seen  # the hidden DELETE never went out


def test_a_shape_no_upstream_tool_matches_is_reported_in_readyz(shaped):
    gw, _ = shaped
    problems = requests.get(f"{gw.base}/readyz", timeout=10).json()["hidden_tools"][PREFIX]
    assert any("routers[/gateway/shaped].tools.fixture_no_such_tool: no tool of this name" in p
               for p in problems), problems


def _problems(shapes: dict) -> list[str]:
    doc = {"name": "d", "routers": [{"prefix": "/p", "server": "api", "tools": shapes}], "servers": [{"name": "api"}],
           "tools": [{"name": "search", "endpoint": "http://api.example/search",
                      "args": [{"name": "q", "position": "query"}]},
                     {"name": "list", "endpoint": "http://api.example/list"}]}
    try:
        documents.validate(doc)
    except ConfigError as exc:
        return exc.errors
    return []


def test_validation_names_each_bad_override():
    assert _problems({"search": {"name": "find", "arguments": {"q": {"fixed": "x"}}}}) == []
    assert _problems({"serch": {"name": "find"}}) == [
        "default/d: routers[0].tools.serch: this router exposes no tool 'serch' (its tools: search, list)"]
    assert _problems({"search": {"arguments": {"query": {"description": "x"}}}}) == [
        "default/d: routers[0].tools.search.arguments.query: tool 'search' has no argument 'query' "
        "(its arguments: q)"]
    assert _problems({"search": {"name": "list"}}) == [
        "default/d: routers[0].tools.search.name: 'list' is already the name of tool 'list' on this router"]
    assert _problems({"search": {"name": "list"}, "list": {"hidden": True}}) == []  # the old name is free
    assert _problems({"search": {"name": "bad name!"}}) == [
        "default/d: routers[0].tools.search.name: 'bad name!' must be 1-64 characters of A-Z a-z 0-9 _ . -"]
    assert _problems({"search": {"arguments": {"q": {"fixed": "x", "default": "y"}}}}) == [
        "default/d: routers[0].tools.search.arguments.q: set fixed (hidden, always this value) or default, "
        "not both"]
    assert _problems({"search": {"hidden": "yes"}}) == [
        "default/d: routers[0].tools.search.hidden: expected true or false, got string"]
