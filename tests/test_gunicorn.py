"""The gateway under ``gunicorn -k gevent -w 1``, spoken to by the official ``mcp`` client."""

from __future__ import annotations

import asyncio

from mcp import Client
from mcp.client.sse import sse_client

from tests.fixtures_gateway import gunicorn_path


def test_e2e_under_gunicorn_gevent(seeded_store, start_gateway):
    store, url, _ = seeded_store
    gw = start_gateway(url, command=[gunicorn_path(), "-k", "gevent", "-w", "1", "--graceful-timeout", "2",
                                     "-b", "127.0.0.1:{port}", "gateway_server.wsgi:app"])
    gw.wait_revision(store.revision())

    async def main():
        for client in (Client(gw.mcp_url()), Client(sse_client(gw.sse_url()))):
            async with client:
                names = [t.name for t in (await client.list_tools()).tools]
                assert "get_user" in names
                ok = await client.call_tool("get_user", {"email": "ada@example.com"})
                assert not ok.is_error and "Ada Lovelace" in ok.content[0].text
                bad = await client.call_tool("get_user", {"email": 3})
                assert bad.is_error

    asyncio.run(main())
