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


def test_requests_during_a_workers_first_load_wait_for_it(tmp_path):
    """gunicorn workers load on their first request; one that arrives meanwhile must not see an empty gateway."""
    import threading

    from werkzeug.test import Client

    from gateway_server.app import create_app
    from tests.fixtures_gateway import DEMO_PREFIX, demo_document, migrated_store

    url = f"sqlite:///{tmp_path / 'gw.db'}"
    store = migrated_store(url)
    store.save_document(demo_document("http://127.0.0.1:9"))
    app = create_app(store=store, lazy=True, audit=False, reload_interval=60)
    loading, release = threading.Event(), threading.Event()
    real_start = app.gateway.start

    def slow_start():
        loading.set()
        assert release.wait(10)
        real_start()

    app.gateway.start = slow_start
    first = threading.Thread(target=lambda: Client(app).get("/healthz"))
    first.start()
    try:
        assert loading.wait(10)
        answers: list[int] = []
        second = threading.Thread(target=lambda: answers.append(Client(app).get(f"{DEMO_PREFIX}/mcp").status_code))
        second.start()
        second.join(0.5)
        assert second.is_alive() and not answers, f"answered {answers} before the first load finished"
        release.set()
        second.join(10)
        assert answers and answers[0] != 404, answers  # a GET without a session: not "nothing is served"
    finally:
        release.set()
        first.join(10)
        app.stop()
