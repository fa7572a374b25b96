"""``routers[].servers``: one prefix serving a REST server and two MCP upstreams, seen by the official client.

Filtering (``allowedTools``/``deniedTools``) and prefixing (``toolPrefix``; by default ``<backend>_``
when a router aggregates, ``""`` for none) must give the names the validator computed; a collision the
validator can see is refused at save; one only the running upstreams reveal is resolved first-wins and
reported on ``/readyz``.
"""

from __future__ import annotations

import asyncio
import sys

import pytest
import requests
from mcp import Client
from mcp.client.sse import sse_client
from mcp.shared.exceptions import MCPError

from mcpgw_sdk.documents import visible_tools
from mcpgw_sdk.errors import ConfigError
from tests.fixtures_gateway import FIXTURE, GatewayProc, demo_document, migrated_store, run_backend, run_gateway, seed
from tests.helpers import Procs, wait_for

AGG = "/gateway/agg"
CLASH = "/gateway/clash"


def upstream(name: str, **extra) -> dict:
    """A stdio ``mcpServers`` entry running the conformance fixture."""
    return {"name": name, "type": "stdio", "command": sys.executable, "args": [FIXTURE], **extra}


def aggregated_document(backend_url: str) -> dict:
    """The demo REST server plus two upstreams under one prefix, each filtered and prefixed differently."""
    doc = demo_document(backend_url, name="aggregate", prefix=AGG)
    doc["routers"] = [{"prefix": AGG, "servers": ["users", "alpha", "beta"]}]
    doc["servers"][0]["allowedTools"] = ["list_users", "get_user"]
    doc["mcpServers"] = [upstream("alpha", allowedTools=["echo", "pid", "slow"], deniedTools=["slow"]),
                         upstream("beta", toolPrefix="", allowedTools=["test_simple_text", "add_tool"])]
    return doc


def clash_document() -> dict:
    """Two upstreams whose prefixes differ, so only their run-time tool lists can collide."""
    return {"name": "clash", "tenant": "default", "routers": [{"prefix": CLASH, "servers": ["gamma", "delta"]}],
            "mcpServers": [upstream("gamma", toolPrefix="g_", allowedTools=["echo"]),
                           upstream("delta", toolPrefix="", deniedTools=["slow"])]}


EXPECTED = {"users_list_users", "users_get_user", "alpha_echo", "alpha_pid", "test_simple_text", "add_tool"}


@pytest.fixture(scope="module")
def agg(tmp_path_factory):
    """A gateway serving the aggregated and the clash documents; yields ``(gateway, backend_url)``."""
    with Procs(tmp_path_factory.mktemp("agg")) as procs:
        backend = run_backend(procs)
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        revision = seed(url, aggregated_document(backend), clash_document())
        yield run_gateway(procs, url, revision=revision), backend


def _names(url: str, transport: str = "http") -> list[str]:
    async def main():
        async with Client(url if transport == "http" else sse_client(url)) as client:
            return [t.name for t in (await client.list_tools()).tools]

    return asyncio.run(main())


def _wait_names(gw: GatewayProc, prefix: str, expected: set[str]) -> list[str]:
    # The upstreams list their tools once their processes are up; the route is rebuilt then.
    return wait_for(lambda: (n := _names(gw.mcp_url(prefix))) and expected <= set(n) and n,
                    timeout=30, interval=0.3, what=f"tools {sorted(expected)} on {prefix}")


@pytest.mark.parametrize("transport", ["http", "sse"])
def test_one_prefix_serves_rest_and_two_upstreams_filtered_and_prefixed(agg, transport):
    gw, _ = agg
    _wait_names(gw, AGG, EXPECTED)
    url = gw.mcp_url(AGG) if transport == "http" else gw.sse_url(AGG)
    names = _names(url, transport)
    assert set(names) == EXPECTED, names
    assert names.index("users_get_user") < names.index("alpha_echo") < names.index("test_simple_text")

    async def main():
        async with Client(url if transport == "http" else sse_client(url)) as client:
            user = await client.call_tool("users_get_user", {"email": "ada@example.com"})
            assert not user.is_error and "Ada Lovelace" in user.content[0].text
            echoed = await client.call_tool("alpha_echo", {"text": f"via {transport}"})
            assert echoed.content[0].text == f"via {transport}"
            simple = await client.call_tool("test_simple_text", {})
            assert simple.content[0].text == "This is a simple text response for testing."
            for hidden in ("alpha_slow", "echo", "beta_test_simple_text", "users_delete_user", "get_user"):
                with pytest.raises(MCPError) as exc:
                    await client.call_tool(hidden, {})
                assert exc.value.code == -32602, hidden

    asyncio.run(main())


def test_visible_rest_names_match_the_validator(agg):
    gw, backend = agg
    doc = aggregated_document(backend)
    rest = {visible for visible, _, _ in visible_tools(doc, doc["routers"][0])}
    assert rest == {"users_list_users", "users_get_user"}
    assert rest <= set(_wait_names(gw, AGG, EXPECTED))


def test_collisions_are_refused_at_save_with_the_field(agg, tmp_path):
    _, backend = agg
    store = migrated_store(f"sqlite:///{tmp_path / 'refuse.db'}")
    try:
        same_prefix = aggregated_document(backend)
        same_prefix["mcpServers"][1]["toolPrefix"] = "alpha_"
        with pytest.raises(ConfigError, match=r"routers\[0\]\.servers.*'alpha' and 'beta' share the tool prefix"):
            store.save_document(same_prefix)

        two_rest = aggregated_document(backend)
        two_rest["servers"].append({**two_rest["servers"][0], "name": "users2", "toolPrefix": "users_"})
        two_rest["routers"][0]["servers"].append("users2")
        with pytest.raises(ConfigError, match=r"routers\[0\].*'users_get_user' is exposed by both 'users' and "
                                              r"'users2'") as exc:
            store.save_document(two_rest)
        assert "toolPrefix" in str(exc.value.errors)

        too_long = aggregated_document(backend)
        too_long["mcpServers"][0]["toolPrefix"] = "x" * 70
        with pytest.raises(ConfigError, match="toolPrefix"):
            store.save_document(too_long)
        assert store.list_documents() == []  # nothing refused was stored
    finally:
        store.close()


def test_run_time_collision_first_backend_wins_and_readyz_reports_it(agg):
    gw, _ = agg
    _wait_names(gw, CLASH, {"g_echo", "add_tool"})

    async def main():
        async with Client(gw.mcp_url(CLASH)) as client:
            added = await client.call_tool("add_tool", {"name": "g_echo"})  # delta now also offers g_echo
            assert added.content[0].text == "added g_echo"
            bad = await client.call_tool("add_tool", {"name": "bad name!"})  # a name clients would reject
            assert bad.content[0].text == "added bad name!"

    asyncio.run(main())
    collisions = wait_for(lambda: gw.readyz()["hidden_tools"].get(CLASH), timeout=20, what="a reported collision")
    assert any("'g_echo' of server 'delta' is hidden" in c and "'gamma'" in c for c in collisions), collisions
    wait_for(lambda: any("'bad name!'" in c and "not served" in c for c in gw.readyz()["hidden_tools"][CLASH]),
             timeout=20, what="the invalid name reported")

    async def call():
        async with Client(gw.mcp_url(CLASH)) as client:
            names = [t.name for t in (await client.list_tools()).tools]
            assert names.count("g_echo") == 1 and "bad name!" not in names and "echo" in names
            return (await client.call_tool("g_echo", {"text": "gamma answers"})).content[0].text

    assert asyncio.run(call()) == "gamma answers"  # gamma is listed first in routers[].servers
    assert requests.get(f"{gw.base}/readyz", timeout=5).status_code == 200
