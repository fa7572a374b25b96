"""Races through the API on every backend: 50 creates of one document → one 201 and 49 409s;
50 updates from the same base version → one 200 and 49 409s."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.test_api import Api, Client, doc, seed, start_api

CLIENTS = 50


def _race(base: str, token: str, send) -> list[tuple[int, dict]]:
    """Run ``send(client, i)`` from CLIENTS threads released together; return (status, body) of each."""
    barrier = threading.Barrier(CLIENTS)

    def one(i):
        client = Client(base)
        client.headers["Authorization"] = token
        barrier.wait(timeout=30)
        resp = send(client, i)
        return resp.status_code, resp.json()

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(CLIENTS)))


@pytest.mark.backends
def test_concurrent_creates_and_updates_of_one_document(db_url, tmp_path):
    store = seed(db_url)
    base, proc = start_api(db_url, tmp_path)
    try:
        token = Api(base, store, proc).login("admin").headers["Authorization"]

        created = _race(base, token, lambda c, i: c.post("documents", json=doc("race", "acme"), timeout=60))
        statuses = sorted(status for status, _ in created)
        assert statuses == [201] + [409] * (CLIENTS - 1), [r for r in created if r[0] not in (201, 409)][:3]
        assert all(body["error"]["code"] == "conflict" for status, body in created if status == 409)
        assert [v.version for v in store.list_versions("acme", "race")] == [1]

        updated = _race(base, token, lambda c, i: c.put("documents/acme/race", headers={"If-Match": '"1"'},
                                                        json=doc("race", "acme", description=f"edit {i}"), timeout=60))
        statuses = sorted(status for status, _ in updated)
        assert statuses == [200] + [409] * (CLIENTS - 1), [r for r in updated if r[0] not in (200, 409)][:3]
        assert all(body["error"]["details"] == [{"base_version": 1, "current_version": 2}]
                   for status, body in updated if status == 409)
        winner = next(body for status, body in updated if status == 200)
        assert store.get_document("acme", "race").content["tools"][0]["description"] == \
            winner["content"]["tools"][0]["description"]
    finally:
        proc.stop()
        store.close()
