"""Sessions of the management API end: logout revokes tokens, a refresh token is good for one refresh,
and the failed-login limit is shared by every API process on one database."""

from __future__ import annotations

from tests.test_api import PASSWORDS, Api, Client, error_of, seed, start_api


def _tokens(api: Api, user: str = "alice") -> dict:
    resp = api.anonymous().post("auth/login", json={"username": user, "password": PASSWORDS[user]})
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_logout_revokes_tokens_and_refresh_tokens_are_single_use(tmp_path):
    url = f"sqlite:///{tmp_path / 'l.db'}"
    store = seed(url)
    base, proc = start_api(url, tmp_path)
    try:
        api = Api(base, store, proc)
        anon = api.anonymous()

        # logout: the refresh token and the access token sent along stop working; other sessions live on
        one, two = _tokens(api), _tokens(api)
        resp = Client(base, one["access_token"]).post("auth/logout", json={"refresh_token": one["refresh_token"]})
        assert resp.status_code == 204, resp.text
        refused = anon.post("auth/refresh", json={"refresh_token": one["refresh_token"]})
        assert refused.status_code == 401 and error_of(refused)["code"] == "unauthorized"
        assert Client(base, one["access_token"]).get("me").status_code == 401
        assert Client(base, two["access_token"]).get("me").status_code == 200
        assert anon.post("auth/logout", json={"refresh_token": one["refresh_token"]}).status_code == 401
        assert anon.post("auth/logout", json={"refresh_token": two["access_token"]}).status_code == 401
        assert anon.post("auth/logout", json={}).status_code == 422

        # a refresh token is good for one refresh: a replayed copy is refused
        fresh = anon.post("auth/refresh", json={"refresh_token": two["refresh_token"]})
        assert fresh.status_code == 200
        assert anon.post("auth/refresh", json={"refresh_token": two["refresh_token"]}).status_code == 401

        # all: true ends every session of the user, on every device
        three = _tokens(api)
        resp = anon.post("auth/logout", json={"refresh_token": three["refresh_token"], "all": True})
        assert resp.status_code == 204
        for tokens in (fresh.json(), three, two):
            assert Client(base, tokens["access_token"]).get("me").status_code == 401
        assert anon.post("auth/refresh", json={"refresh_token": fresh.json()["refresh_token"]}).status_code == 401
        assert Client(base, _tokens(api)["access_token"]).get("me").status_code == 200  # logging in again works
        assert Client(base, _tokens(api, "bob")["access_token"]).get("me").status_code == 200
    finally:
        proc.stop()
        store.close()


def test_failed_login_limit_is_shared_by_api_processes(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    store = seed(url)
    first, proc1 = start_api(url, tmp_path)
    second, proc2 = start_api(url, tmp_path)
    try:
        bad = {"username": "alice", "password": "wrong-password"}
        for i in range(10):  # five failures through each process: ten in all, the limit
            assert Client(first if i % 2 else second).post("auth/login", json=bad).status_code == 401
        good = {"username": "alice", "password": PASSWORDS["alice"]}
        for base in (first, second):
            resp = Client(base).post("auth/login", json=good)
            assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0, resp.text
        assert Client(first).post("auth/login", json={"username": "bob", "password": PASSWORDS["bob"]}).ok
        # counters are stored hashed: neither the address nor the name is in the table
        sv = store.m.StoredValue
        rows = store._read(lambda: list(sv.select().where(sv.key.startswith("login:")).tuples()))
        assert rows and all("alice" not in k + v and "127.0.0.1" not in k + v for k, v in rows)
    finally:
        proc1.stop()
        proc2.stop()
        store.close()
