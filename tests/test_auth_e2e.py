"""MCP endpoint authentication end to end: a real gateway, the official ``mcp`` client, a real OAuth issuer.

One gateway serves the demo tools three times: open (``/gateway/demo``), behind API keys
(``/gateway/locked``) and behind OAuth 2.1 tokens of a local issuer (``/gateway/oauth``).
"""

from __future__ import annotations

import asyncio
import http.client
import json

import httpx2
import pytest
import requests
from mcp import Client
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.auth_issuer import CLIENT_ID, CLIENT_SECRET, Issuer
from tests.fixtures_gateway import SseStream, demo_document, migrated_store, run_backend, run_gateway
from tests.helpers import Procs

LOCKED = "/gateway/locked"
FORWARDING = "/gateway/forwarding"
OAUTH = "/gateway/oauth"
AUDIENCE = "mcpgw-e2e"
HELLO = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
         "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class Env:
    """The running setup: gateway, store, issuer and the secrets of the keys created for the tests."""

    def __init__(self, gw, store, issuer, keys):
        self.gw, self.store, self.issuer, self.keys = gw, store, issuer, keys


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    issuer = Issuer(audience=AUDIENCE)
    with Procs(tmp_path_factory.mktemp("auth")) as procs:
        backend = run_backend(procs)
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        store = migrated_store(url)
        try:
            store.create_tenant("acme")
            locked = demo_document(backend, name="locked", prefix=LOCKED)
            locked["routers"][0]["auth"] = {"mode": "apikey"}
            oauth = demo_document(backend, name="oauth", prefix=OAUTH)
            oauth["routers"][0]["auth"] = {"mode": "oauth2", "issuer": issuer.url, "audience": AUDIENCE,
                                           "scopes": ["mcp:tools"]}
            forwarding = demo_document(backend, name="forwarding", prefix=FORWARDING)
            forwarding["routers"][0]["auth"] = {"mode": "apikey"}
            forwarding["tools"].append({
                "name": "echo_credentials", "endpoint": "{{ config.baseUrl }}/echo",
                "headers": {"X-Fwd-Auth": "{{ request.headers.authorization }}",
                            "X-Fwd-Key": "{{ request.headers['x-api-key'] }}"}})
            forwarding["servers"][0]["allowedTools"] = ["echo_credentials"]
            for doc in (demo_document(backend), locked, oauth, forwarding):
                store.save_document(doc)
            store.create_user("alice", "a-long-password", tenants=["default"])
            store.create_user("bob", "b-long-password", tenants=["acme"])
            keys = {
                "full": store.create_key("alice", "default")[1],
                "two": store.create_key("alice", "default", tools=["list_users", "echo_request"])[1],
                "acme": store.create_key("bob", "acme")[1],
            }
            revocable, keys["revocable"] = store.create_key("alice", "default", name="soon-revoked")
            keys["revocable_id"] = revocable.id
            # forward_headers names the credential headers too: on checked routers they must still stay here
            gw = run_gateway(procs, url, reload_interval=0.3, revision=store.revision(),
                             env={"MCPGW_FORWARD_HEADERS": "authorization,x-api-key,x-request-tag"})
            yield Env(gw, store, issuer, keys)
        finally:
            store.close()
            issuer.close()


async def _use(target, tool: str | None = None, arguments: dict | None = None):
    async with Client(target) as client:
        names = [t.name for t in (await client.list_tools()).tools]
        result = await client.call_tool(tool, arguments or {}) if tool else None
        return names, result


def run(url: str, *, headers: dict | None = None, auth=None, tool: str | None = None, arguments: dict | None = None,
        hooks: list | None = None, statuses: list | None = None):
    """List the tools of ``url`` with the official client over Streamable HTTP, and call ``tool``.

    ``hooks`` see every request the client sends; ``statuses`` collects every response status.
    """
    async def status(response):
        if statuses is not None:
            statuses.append(response.status_code)

    async def main():
        async with httpx2.AsyncClient(headers=headers, auth=auth, timeout=15,
                                      event_hooks={"request": hooks or [], "response": [status]}) as http:
            return await _use(streamable_http_client(url, http_client=http), tool, arguments)

    return asyncio.run(main())


def run_sse(url: str, *, headers: dict, tool: str | None = None, arguments: dict | None = None):
    """The same over the HTTP+SSE transport."""
    return asyncio.run(_use(sse_client(url, headers=headers, timeout=15), tool, arguments))


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def refused(url: str, headers: dict) -> requests.Response:
    return requests.post(url, json=HELLO, headers={**ACCEPT, **headers}, timeout=10)


def client_refused(url: str, headers: dict) -> list[int]:
    """Connect the official client with ``headers``; assert it fails, return the HTTP statuses it saw."""
    statuses: list[int] = []
    with pytest.raises(Exception, match="error response"):  # wrapped in task groups: MCPError inside
        try:
            run(url, headers=headers, statuses=statuses)
        except Exception as exc:  # noqa: BLE001 - unwrap anyio's exception groups
            raise _leaf(exc) from None
    return statuses


def _leaf(exc: BaseException) -> BaseException:
    while len(getattr(exc, "exceptions", ())) == 1:
        exc = exc.exceptions[0]
    return exc


# -- API keys --------------------------------------------------------------------------------------


def test_apikey_missing_or_foreign_key_is_401(env):
    mcp = env.gw.mcp_url(LOCKED)
    for headers in ({}, {"Authorization": f"Bearer {env.keys['acme']}"}, {"X-API-Key": "mcpgw_nope"}):
        resp = refused(mcp, headers)
        assert resp.status_code == 401, (headers, resp.text)
        # a key challenge, not Bearer: MCP clients answer Bearer with OAuth discovery, a dead end here
        assert resp.headers["WWW-Authenticate"].startswith('ApiKey realm="mcpgw", header="X-API-Key"')
        assert "resource_metadata" not in resp.headers["WWW-Authenticate"]
        assert set(client_refused(mcp, headers)) == {401}


def _raw(env, method: str, path: str, headers: dict, body: bytes | None = None) -> tuple[int, str, str]:
    """Status, reason phrase and ``WWW-Authenticate`` as they arrive on the wire (http.client parses nothing else)."""
    conn = http.client.HTTPConnection("127.0.0.1", env.gw.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status, resp.reason, resp.getheader("WWW-Authenticate", "")
    finally:
        conn.close()


def test_refusals_carry_the_standard_reason_phrase(env):
    hello = json.dumps(HELLO).encode()
    assert _raw(env, "POST", f"{LOCKED}/mcp", ACCEPT, hello)[:2] == (401, "Unauthorized")
    assert _raw(env, "GET", f"{LOCKED}/sse", {"Accept": "text/event-stream"})[:2] == (401, "Unauthorized")
    status, reason, challenge = _raw(env, "POST", f"{OAUTH}/mcp", ACCEPT, hello)
    assert (status, reason) == (401, "Unauthorized") and challenge.startswith("Bearer ")
    scoped = {**ACCEPT, "Authorization": f"Bearer {env.issuer.token(scope='profile')}"}
    assert _raw(env, "POST", f"{OAUTH}/mcp", scoped, hello)[:2] == (403, "Forbidden")
    assert _raw(env, "POST", "/gateway/nowhere/mcp", ACCEPT, hello)[:2] == (404, "Not Found")


def test_apikey_scoped_to_two_tools_sees_and_calls_only_those(env):
    mcp = env.gw.mcp_url(LOCKED)
    names, result = run(mcp, headers={"Authorization": f"Bearer {env.keys['two']}"}, tool="list_users")
    assert names == ["list_users", "echo_request"]
    assert not result.is_error and "Ada Lovelace" in text(result)
    _, third = run(mcp, headers={"Authorization": f"Bearer {env.keys['two']}"}, tool="get_user",
                   arguments={"email": "ada@example.com"})
    assert third.is_error and "Ada" not in text(third)
    full, _ = run(mcp, headers={"Authorization": f"Bearer {env.keys['full']}"})
    assert len(full) == 10 and {"list_users", "echo_request", "get_user"} <= set(full)


def test_apikey_x_api_key_header_and_sse(env):
    names, result = run(env.gw.mcp_url(LOCKED), headers={"X-API-Key": env.keys["two"]}, tool="list_users")
    assert names == ["list_users", "echo_request"] and not result.is_error
    names, result = run_sse(env.gw.sse_url(LOCKED), headers={"X-API-Key": env.keys["two"]}, tool="get_user",
                            arguments={"email": "ada@example.com"})
    assert names == ["list_users", "echo_request"] and result.is_error
    sse = requests.get(env.gw.sse_url(LOCKED), headers={"Accept": "text/event-stream"}, timeout=10, stream=True)
    with sse:
        assert sse.status_code == 401
    # every message POST is checked too, not only the stream that opened the session
    stream = SseStream(env.gw.sse_url(LOCKED), headers={"X-API-Key": env.keys["two"]})
    try:
        event, endpoint = stream.next()
        assert event == "endpoint"
        post = f"{env.gw.base}{endpoint}" if endpoint.startswith("/") else endpoint
        assert requests.post(post, json=HELLO, timeout=10).status_code == 401
        assert requests.post(post, json=HELLO, headers={"X-API-Key": env.keys["acme"]}, timeout=10).status_code == 401
        assert requests.post(post, json=HELLO, headers={"X-API-Key": env.keys["two"]}, timeout=10).status_code == 202
    finally:
        stream.close()


def test_revoked_key_is_refused_after_the_next_reload(env):
    mcp = env.gw.mcp_url(LOCKED)
    headers = {"Authorization": f"Bearer {env.keys['revocable']}"}
    names, _ = run(mcp, headers=headers)
    assert len(names) == 10
    env.store.revoke_key(env.keys["revocable_id"])
    env.gw.wait_revision(env.store.revision())
    assert refused(mcp, headers).status_code == 401
    assert set(client_refused(mcp, headers)) == {401}


# -- OAuth 2.1 ----------------------------------------------------------------------------------------


def metadata_url(env) -> str:
    return f"{env.gw.base}/.well-known/oauth-protected-resource{OAUTH}"


def test_oauth_token_of_the_issuer_is_accepted_by_the_official_client(env):
    token = env.issuer.token(scope="mcp:tools")
    names, result = run(env.gw.mcp_url(OAUTH), headers={"Authorization": f"Bearer {token}"}, tool="get_user",
                        arguments={"email": "grace@example.com"})
    assert len(names) == 10
    assert not result.is_error and result.structured_content["name"] == "Grace Hopper"
    names, result = run_sse(env.gw.sse_url(OAUTH), headers={"Authorization": f"Bearer {token}"}, tool="list_users")
    assert len(names) == 10 and not result.is_error


@pytest.mark.parametrize("case", ["wrong_audience", "expired", "no_token"])
def test_oauth_bad_tokens_are_401_with_resource_metadata(env, case):
    token = {"wrong_audience": lambda: env.issuer.token(aud="someone-else"),
             "expired": lambda: env.issuer.token(exp_in=-3600),
             "no_token": lambda: None}[case]()
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = refused(env.gw.mcp_url(OAUTH), headers)
    assert resp.status_code == 401, resp.text
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ") and f'resource_metadata="{metadata_url(env)}"' in challenge
    if token:
        assert 'error="invalid_token"' in challenge and resp.json()["error"] == "invalid_token"
    assert set(client_refused(env.gw.mcp_url(OAUTH), headers)) == {401}


def test_oauth_token_without_the_scope_is_403_insufficient_scope(env):
    resp = refused(env.gw.mcp_url(OAUTH), {"Authorization": f"Bearer {env.issuer.token(scope='profile')}"})
    assert resp.status_code == 403
    assert resp.json()["error"] == "insufficient_scope"
    challenge = resp.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="mcp:tools"' in challenge
    assert f'resource_metadata="{metadata_url(env)}"' in challenge


def test_protected_resource_metadata_is_served(env):
    meta = requests.get(metadata_url(env), timeout=10)
    assert meta.status_code == 200
    assert meta.json() == {"resource": env.gw.mcp_url(OAUTH), "authorization_servers": [env.issuer.url],
                           "scopes_supported": ["mcp:tools"], "bearer_methods_supported": ["header"]}
    assert requests.get(f"{env.gw.base}/.well-known/oauth-protected-resource{LOCKED}", timeout=10).status_code == 404


class _Memory:
    """The token storage of the official client's OAuth provider, in memory."""

    def __init__(self):
        self.tokens = self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def test_the_official_client_discovers_the_metadata_and_gets_a_token(env):
    """No token configured: on the 401 the SDK's OAuth provider follows ``resource_metadata`` to the
    gateway's RFC 9728 document, then the issuer's RFC 8414 metadata, gets a token and retries."""
    storage = _Memory()
    provider = ClientCredentialsOAuthProvider(server_url=env.gw.mcp_url(OAUTH), storage=storage, client_id=CLIENT_ID,
                                              client_secret=CLIENT_SECRET, issuer=env.issuer.url)
    seen: list[str] = []

    async def record(request):
        seen.append(str(request.url))

    before = len(env.issuer.paths())
    names, result = run(env.gw.mcp_url(OAUTH), auth=provider, tool="list_users", hooks=[record])
    assert len(names) == 10 and not result.is_error
    assert metadata_url(env) in seen, seen
    issuer_paths = env.issuer.paths()[before:]
    asked = [p for p in issuer_paths if p != "/jwks.json"]
    assert asked[:2] == ["/.well-known/oauth-authorization-server", "/token"], issuer_paths
    assert seen.index(metadata_url(env)) < seen.index(env.issuer.url + "/.well-known/oauth-authorization-server")
    assert storage.tokens is not None and storage.tokens.scope == "mcp:tools"


# -- credentials stay at the gateway --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["apikey", "oauth2"])
def test_client_credentials_are_never_forwarded_to_backends(env, mode):
    secret = env.keys["full"] if mode == "apikey" else env.issuer.token()
    prefix = LOCKED if mode == "apikey" else OAUTH
    headers = {"Authorization": f"Bearer {secret}", "X-API-Key": secret} if mode == "apikey" else \
        {"Authorization": f"Bearer {secret}"}
    _, result = run(env.gw.mcp_url(prefix), headers=headers, tool="echo_request", arguments={"note": "hi"})
    assert not result.is_error, text(result)
    seen = json.loads(text(result))
    assert seen["query"] == {"note": "hi"} or seen["query"] == {"note": ["hi"]}
    sent = {k.lower(): v for k, v in seen["headers"].items()}
    assert "authorization" not in sent and "x-api-key" not in sent
    assert secret not in json.dumps(seen)


def test_templates_naming_the_credential_render_it_empty(env):
    secret = env.keys["full"]
    _, result = run(env.gw.mcp_url(FORWARDING), headers={"Authorization": f"Bearer {secret}", "X-API-Key": secret},
                    tool="echo_credentials")
    assert not result.is_error, text(result)
    sent = {k.lower(): v for k, v in json.loads(text(result))["headers"].items()}
    assert "x-fwd-auth" not in sent and "x-fwd-key" not in sent
    assert secret not in text(result)


def test_the_store_refuses_an_unusable_oauth2_router_and_the_gateway_keeps_serving(env):
    from mcpgw_sdk.errors import ConfigError

    doc = demo_document("http://127.0.0.1:9", name="oauth-broken", prefix="/gateway/oauth-broken")
    doc["routers"][0]["auth"] = {"mode": "oauth2", "audience": AUDIENCE}
    revision = env.store.revision()
    with pytest.raises(ConfigError, match=r"routers\[0\]\.auth\.issuer: required for mode oauth2"):
        env.store.save_document(doc)
    assert env.store.revision() == revision
    assert requests.get(metadata_url(env), timeout=10).status_code == 200


def test_a_session_belongs_to_the_credential_that_opened_it(env):
    mcp = env.gw.mcp_url(LOCKED)
    owner = {"Authorization": f"Bearer {env.keys['full']}"}
    other = {"Authorization": f"Bearer {env.keys['two']}"}  # valid, same tenant, another key
    opened = requests.post(mcp, json=HELLO, headers={**ACCEPT, **owner}, timeout=10)
    assert opened.status_code == 200, opened.text
    sid = {"Mcp-Session-Id": opened.headers["Mcp-Session-Id"]}
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    stolen = requests.post(mcp, json=listing, headers={**ACCEPT, **other, **sid}, timeout=10)
    assert stolen.status_code == 403, stolen.text
    assert stolen.json()["id"] == 2 and "another credential" in stolen.json()["error"]["message"]
    stream = requests.get(mcp, headers={"Accept": "text/event-stream", **other, **sid}, timeout=10, stream=True)
    with stream:
        assert stream.status_code == 403
    assert requests.delete(mcp, headers={**other, **sid}, timeout=10).status_code == 403
    mine = requests.post(mcp, json=listing, headers={**ACCEPT, **owner, **sid}, timeout=10)
    assert mine.status_code == 200 and len(mine.json()["result"]["tools"]) == 10
    # the same over HTTP+SSE: the stream's session answers only its own credential
    sse = SseStream(env.gw.sse_url(LOCKED), headers={"X-API-Key": env.keys["two"]})
    try:
        event, endpoint = sse.next()
        assert event == "endpoint"
        post = f"{env.gw.base}{endpoint}"
        assert requests.post(post, json=HELLO, headers={"X-API-Key": env.keys["full"]}, timeout=10).status_code == 403
        assert requests.post(post, json=HELLO, headers={"X-API-Key": env.keys["two"]}, timeout=10).status_code == 202
        assert json.loads(sse.next()[1])["result"]["serverInfo"]["name"] == "mcpgw"
    finally:
        sse.close()


def test_sse_templates_naming_the_credential_render_it_empty(env):
    secret = env.keys["full"]
    _, result = run_sse(env.gw.sse_url(FORWARDING), headers={"Authorization": f"Bearer {secret}",
                                                             "X-API-Key": secret}, tool="echo_credentials")
    assert not result.is_error, text(result)
    sent = {k.lower(): v for k, v in json.loads(text(result))["headers"].items()}
    assert "x-fwd-auth" not in sent and "x-fwd-key" not in sent and secret not in text(result)
