"""The official Python client (``mcp`` 2.3.0) against a dual-era gateway: auto, pinned 2026-07-28 and legacy modes."""

from __future__ import annotations

import asyncio

import pytest
from mcp import Client

from tests.fixtures_gateway import demo_document, fixture_document, run_backend, run_gateway, seed
from tests.helpers import Procs

UPSTREAM = "/gateway/conformance"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    """A gateway serving the demo REST tools at ``/gateway/demo`` and the fixture upstream at ``/gateway/conformance``."""
    upstream = fixture_document("conformance", UPSTREAM)
    with Procs(tmp_path_factory.mktemp("modern-clients")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, demo_document(run_backend(procs)), upstream)
        yield run_gateway(procs, url, revision=revision)


async def _session(url: str, mode: str, tool: str, arguments: dict):
    async with Client(url, mode=mode) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool(tool, arguments)
        return client.protocol_version, names, result


def run(url: str, mode: str, tool: str, arguments: dict | None = None):
    """``(negotiated version, tool names, call result)`` of one client session."""
    return asyncio.run(_session(url, mode, tool, arguments or {}))


def test_auto_mode_settles_on_2026_07_28_and_calls_rest_tools(gw):
    version, names, result = run(gw.mcp_url(), "auto", "get_user", {"email": "ada@example.com"})
    assert version == "2026-07-28"
    assert "get_user" in names and not result.is_error
    assert "Ada Lovelace" in result.content[0].text


def test_pinned_modern_mode_calls_rest_tools(gw):
    version, names, result = run(gw.mcp_url(), "2026-07-28", "list_users")
    assert version == "2026-07-28" and "list_users" in names and not result.is_error


def test_pinned_modern_mode_calls_upstream_tools(gw):
    version, names, result = run(gw.mcp_url(UPSTREAM), "2026-07-28", "test_simple_text")
    assert version == "2026-07-28" and "test_simple_text" in names
    assert result.content[0].text == "This is a simple text response for testing."


def test_modern_prompts_and_resources_through_the_official_client(gw):
    async def main():
        async with Client(gw.mcp_url(UPSTREAM), mode="2026-07-28") as client:
            prompts = [p.name for p in (await client.list_prompts()).prompts]
            read = await client.read_resource("test://static-text")
            return prompts, read

    prompts, read = asyncio.run(main())
    assert "test_simple_prompt" in prompts
    assert read.contents[0].text == "This is the content of the static text resource."


@pytest.mark.parametrize("prefix, tool", [("/gateway/demo", "list_users"), (UPSTREAM, "test_simple_text")])
def test_legacy_mode_behaves_as_before(gw, prefix, tool):
    version, names, result = run(gw.mcp_url(prefix), "legacy", tool)
    assert version == "2025-11-25" and tool in names and not result.is_error
