"""RFC 8693 token exchange: backends of an OAuth router get a token exchanged for the caller's, never the caller's.

A real gateway process serves an ``auth.mode: oauth2`` router (tokens of :class:`tests.auth_issuer.Issuer`)
in front of a REST server (an in-process recording backend) and an upstream MCP server (the conformance
fixture over Streamable HTTP, whose ``header_value`` tool echoes a request header), both with
``tokenExchange`` pointing at an in-process authorization server that speaks RFC 8693 and records
every request.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from urllib.parse import parse_qs

import pytest

from tests.auth_issuer import Issuer
from tests.fixtures_gateway import http_url, run_gateway, seed  # noqa: F401 - http_url: the conformance fixture
from tests.helpers import Procs, free_port, wait_for, wsgi_server
from tests.test_auth_e2e import run, run_sse, text

AUDIENCE = "mcpgw-tx"
REST = "/default/tx/rest"
UP = "/default/tx/up"
DOWN = "/default/tx/down"
SECRET = "as-client-s3cret"


class AuthServer:
    """An RFC 8693 token endpoint: records each request; ``mode`` and ``expires_in`` steer its answers."""

    def __init__(self):
        self.requests: list[dict] = []
        self.mode = "ok"
        self.expires_in: int | None = 3600
        self.delay = 0.0
        self._lock = threading.Lock()
        self.server = wsgi_server(self.app)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/token"

    def app(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        form = {k: v for k, v in parse_qs(environ["wsgi.input"].read(length).decode()).items()}
        with self._lock:
            self.requests.append({"path": environ["PATH_INFO"], "form": form,
                                  "authorization": environ.get("HTTP_AUTHORIZATION", ""),
                                  "content_type": environ.get("CONTENT_TYPE", "")})
            n = len(self.requests)
        if self.delay:
            time.sleep(self.delay)
        if self.mode == "invalid_grant":
            body, status = {"error": "invalid_grant", "error_description": "subject token rejected"}, "400 Bad Request"
        else:
            body, status = {"access_token": f"backend-token-{n}", "token_type": "Bearer",
                            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token"}, "200 OK"
            if self.expires_in is not None:
                body["expires_in"] = self.expires_in
        start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store")])
        return [json.dumps(body).encode()]

    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def last(self) -> dict:
        with self._lock:
            return self.requests[-1]


class Setup:
    def __init__(self, gw, issuer, auth, seen):
        self.gw, self.issuer, self.auth, self.seen = gw, issuer, auth, seen

    def caller(self) -> str:
        """A fresh caller token (a distinct jti: a cache entry of its own)."""
        return self.issuer.token(jti=uuid.uuid4().hex)


def _document(base: str, upstream: str, issuer: Issuer, auth: AuthServer) -> dict:
    oauth = {"mode": "oauth2", "issuer": issuer.url, "audience": AUDIENCE, "scopes": ["mcp:tools"]}
    exchange = {"tokenEndpoint": auth.url, "clientId": "gateway-client", "clientSecret": "{{ env('TX_SECRET') }}",
                "audience": "https://api.example", "scope": "read write"}
    down = {"tokenEndpoint": f"http://127.0.0.1:{free_port()}/token", "timeout": 3}
    return {
        "name": "tx", "tenant": "default",
        "routers": [{"prefix": REST, "server": "api", "auth": oauth},
                    {"prefix": UP, "server": "up", "auth": oauth},
                    {"prefix": DOWN, "server": "down", "auth": oauth}],
        "servers": [{"name": "api", "allowedTools": ["whoami"], "tokenExchange": exchange},
                    {"name": "down", "allowedTools": ["whoami"], "tokenExchange": down}],
        "tools": [{"name": "whoami", "method": "GET", "endpoint": f"{base}/whoami",
                   "headers": {"X-Note": "static"}}],
        "mcpServers": [{"name": "up", "type": "streamable-http", "url": upstream, "policy": "onDemand",
                        "tokenExchange": {**exchange, "audience": "https://upstream.example"}}],
    }


@pytest.fixture(scope="module")
def tx(tmp_path_factory, http_url):  # noqa: F811
    seen: list[dict] = []

    def backend(environ, start_response):
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        seen.append(headers)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"headers": headers}).encode()]

    server = wsgi_server(backend)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    issuer = Issuer(audience=AUDIENCE)
    auth = AuthServer()
    try:
        with Procs(tmp_path_factory.mktemp("tx")) as procs:
            url = f"sqlite:///{procs.log_dir / 'gw.db'}"
            gw = run_gateway(procs, url, revision=seed(url, _document(base, http_url, issuer, auth)),
                             env={"MCPGW_TEMPLATE_ENV": "TX_SECRET", "TX_SECRET": SECRET})
            yield Setup(gw, issuer, auth, seen)
    finally:
        server.shutdown()
        auth.server.shutdown()
        issuer.close()


def _call(tx: Setup, prefix: str, tool: str, caller: str, arguments: dict | None = None):
    _, result = run(tx.gw.mcp_url(prefix), headers={"Authorization": f"Bearer {caller}"}, tool=tool,
                    arguments=arguments)
    return result


@pytest.fixture(autouse=True)
def _reset(request):
    if "tx" in request.fixturenames:
        auth = request.getfixturevalue("tx").auth
        auth.mode, auth.expires_in, auth.delay = "ok", 3600, 0.0


def test_the_rest_backend_sees_the_exchanged_token_never_the_callers(tx):
    caller = tx.caller()
    before = tx.auth.count()
    result = _call(tx, REST, "whoami", caller)
    assert not result.is_error, text(result)
    sent = json.loads(text(result))["headers"]
    assert sent["authorization"] == f"Bearer backend-token-{before + 1}"
    assert sent["x-note"] == "static"
    assert caller not in json.dumps(tx.seen)
    asked = tx.auth.last()
    form = asked["form"]
    assert form["grant_type"] == ["urn:ietf:params:oauth:grant-type:token-exchange"]
    assert form["subject_token"] == [caller]
    assert form["subject_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
    assert form["requested_token_type"] == ["urn:ietf:params:oauth:token-type:access_token"]
    assert form["audience"] == ["https://api.example"] and form["scope"] == ["read write"]
    assert "client_id" not in form and "client_secret" not in form
    assert asked["content_type"] == "application/x-www-form-urlencoded"
    assert asked["authorization"] == "Basic " + base64.b64encode(f"gateway-client:{SECRET}".encode()).decode()
    assert caller not in tx.gw.proc.output() and SECRET not in tx.gw.proc.output()


def test_the_upstream_sees_the_exchanged_token_never_the_callers(tx):
    caller = tx.caller()
    before = tx.auth.count()
    result = _call(tx, UP, "header_value", caller, {"name": "authorization"})
    assert not result.is_error, text(result)
    assert text(result) == f"Bearer backend-token-{before + 1}"
    form = tx.auth.last()["form"]
    assert form["subject_token"] == [caller] and form["audience"] == ["https://upstream.example"]


def test_a_legacy_sse_session_gets_the_exchanged_token_too(tx):
    caller = tx.caller()
    before = tx.auth.count()
    _, result = run_sse(tx.gw.base + UP + "/sse", headers={"Authorization": f"Bearer {caller}"},
                        tool="header_value", arguments={"name": "authorization"})
    assert not result.is_error, text(result)
    assert text(result) == f"Bearer backend-token-{before + 1}"
    assert tx.auth.last()["form"]["subject_token"] == [caller]


def test_the_token_is_reused_within_its_lifetime(tx):
    caller = tx.caller()
    first = _call(tx, REST, "whoami", caller)
    count = tx.auth.count()
    second = _call(tx, REST, "whoami", caller)
    assert not first.is_error and not second.is_error, (text(first), text(second))
    assert tx.auth.count() == count  # the second call used the cached token
    assert json.loads(text(first))["headers"]["authorization"] == json.loads(text(second))["headers"]["authorization"]
    # another caller gets a token of its own
    other = _call(tx, REST, "whoami", tx.caller())
    assert tx.auth.count() == count + 1 and not other.is_error
    assert tx.auth.last()["form"]["subject_token"] != [caller]


def test_an_expired_token_is_exchanged_again(tx):
    tx.auth.expires_in = 4  # kept 3 s (a quarter of it is the skew)
    caller = tx.caller()
    first = json.loads(text(_call(tx, REST, "whoami", caller)))["headers"]["authorization"]
    count = tx.auth.count()

    def renewed():
        sent = json.loads(text(_call(tx, REST, "whoami", caller)))["headers"]["authorization"]
        return sent if sent != first else None

    second = wait_for(renewed, timeout=20, interval=0.2, what="a token exchanged again after expiry")
    assert tx.auth.count() == count + 1 and second == f"Bearer backend-token-{count + 1}"
    assert tx.auth.last()["form"]["subject_token"] == [caller]


def test_a_refused_exchange_is_a_clear_tool_error(tx):
    tx.auth.mode = "invalid_grant"
    caller = tx.caller()
    count = len(tx.seen)
    result = _call(tx, REST, "whoami", caller)
    assert result.is_error
    message = text(result)
    assert "token exchange for server api" in message and "invalid_grant: subject token rejected" in message
    assert "HTTP 400" in message and caller not in message and SECRET not in message
    assert len(tx.seen) == count  # nothing reached the backend
    assert caller not in tx.gw.proc.output()
    up = _call(tx, UP, "header_value", tx.caller(), {"name": "authorization"})
    assert up.is_error and "upstream up" in text(up) and "invalid_grant" in text(up), text(up)
    # failures are not cached: once the server agrees, the same caller is served
    tx.auth.mode = "ok"
    again = _call(tx, REST, "whoami", caller)
    assert not again.is_error, text(again)


def test_an_unreachable_token_endpoint_is_a_clear_tool_error(tx):
    caller = tx.caller()
    result = _call(tx, DOWN, "whoami", caller)
    assert result.is_error
    message = text(result)
    assert "token exchange for server down" in message and "failed" in message, message
    assert caller not in message


def test_concurrent_identical_exchanges_share_one_request(tx):
    from gateway_server.token_exchange import TokenCache, TokenExchange

    tx.auth.delay = 0.3
    exchange = TokenExchange({"tokenEndpoint": tx.auth.url, "audience": "a"}, server="s", cache=TokenCache())
    before = tx.auth.count()
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(exchange.token("subject"))) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert tx.auth.count() == before + 1 and len(set(got)) == 1 and len(got) == 5
    assert "client_id" not in tx.auth.last()["form"]  # no clientId: no client authentication at all


# -- validation -------------------------------------------------------------------------------------------

def _errors(doc: dict) -> list[str]:
    from mcpgw_sdk.documents import validate
    from mcpgw_sdk.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        validate(doc)
    return caught.value.errors


def _valid_doc() -> dict:
    return {"name": "v", "routers": [{"prefix": "/default/v", "servers": ["api", "up"],
                                      "auth": {"mode": "oauth2", "issuer": "https://idp.example"}}],
            "servers": [{"name": "api", "tokenExchange": {"tokenEndpoint": "https://as.example/token"}}],
            "tools": [{"name": "t", "endpoint": "https://api.example/t"}],
            "mcpServers": [{"name": "up", "type": "streamable-http", "url": "https://up.example/mcp",
                            "tokenExchange": {"tokenEndpoint": "https://as.example/token", "clientId": "gw",
                                              "clientSecret": "{{ env('AS_SECRET') }}", "resource": ["r1", "r2"],
                                              "header": "X-Backend-Token", "scheme": ""}}]}


def test_a_valid_token_exchange_block_is_kept():
    from mcpgw_sdk.documents import validate

    doc = validate(_valid_doc())
    assert doc["mcpServers"][0]["tokenExchange"]["resource"] == ["r1", "r2"]


def test_bad_token_exchange_config_is_refused_with_field_paths():
    doc = _valid_doc()
    doc["servers"][0]["tokenExchange"] = {"clientSecret": "literal-secret", "header": "Content-Length",
                                          "scheme": "Two words", "extra": 1}
    doc["mcpServers"][0]["tokenExchange"]["tokenEndpoint"] = "ftp://as.example/token"
    doc["mcpServers"][0]["tokenExchange"]["clientSecret"] = "{{ request.headers.authorization }}"
    errors = "\n".join(_errors(doc))
    for expected in ("servers[0].tokenExchange.tokenEndpoint: required",
                     "servers[0].tokenExchange: unknown key 'extra'",
                     "servers[0].tokenExchange.clientSecret: a secret must not be written in the document",
                     "servers[0].tokenExchange.clientId: required with clientSecret",
                     "servers[0].tokenExchange.header: 'Content-Length' is not a header name",
                     "servers[0].tokenExchange.scheme: 'Two words' is not an auth scheme",
                     "mcpServers[0].tokenExchange.tokenEndpoint: 'ftp://as.example/token' is not an http(s) URL",
                     "mcpServers[0].tokenExchange.clientSecret: may only read env()"):
        assert expected in errors, errors


def test_token_exchange_needs_oauth_routers_and_keeps_the_callers_token_out():
    doc = _valid_doc()
    doc["routers"].append({"prefix": "/default/open", "server": "api"})
    doc["routers"].append({"prefix": "/default/keys", "server": "up", "auth": {"mode": "apikey"}})
    doc["tools"][0]["headers"] = {"Authorization": "{{ request.headers.authorization }}"}
    doc["mcpServers"][0]["headers"] = {"X-Key": "{{ request.headers['x-api-key'] }}"}
    doc["mcpServers"][0]["allowAuthorizationPassThrough"] = True
    errors = "\n".join(_errors(doc))
    for expected in ("routers[1].auth.mode: server 'api' uses tokenExchange, which needs the caller's OAuth token",
                     "routers[2].auth.mode: server 'up' uses tokenExchange",
                     "tools[0].headers.Authorization: reads the caller's credential header",
                     "mcpServers[0].headers.X-Key: reads the caller's credential header",
                     "mcpServers[0].allowAuthorizationPassThrough: cannot be true with tokenExchange"):
        assert expected in errors, errors


def test_a_stdio_upstream_takes_no_token_exchange():
    doc = _valid_doc()
    doc["mcpServers"][0] = {"name": "up", "type": "stdio", "command": "python",
                            "tokenExchange": {"tokenEndpoint": "https://as.example/token"}}
    assert any("mcpServers[0].tokenExchange: only sse and streamable-http" in e for e in _errors(doc))


def test_the_builders_write_a_token_exchange_block_validation_accepts():
    from mcpgw_sdk.builders import DocumentBuilder

    doc = DocumentBuilder("exchanged")
    doc.rest_server("api").token_exchange("https://as.example/token", client_id="gw",
                                           client_secret='{{ env("API_CLIENT_SECRET") }}', audience="api")
    doc.tool("ping", server="api").get("https://api.example/ping")
    doc.router("/default/exchanged", server="api", auth={"mode": "oauth2", "issuer": "https://as.example"})
    assert doc.problems() == []
    assert doc.content["servers"][0]["tokenExchange"] == {
        "tokenEndpoint": "https://as.example/token", "clientId": "gw",
        "clientSecret": '{{ env("API_CLIENT_SECRET") }}', "audience": "api"}
    doc.router("/default/exchanged", server="api", auth="apikey")  # no OAuth token to exchange: refused
    assert any("tokenExchange" in p or "oauth2" in p for p in doc.problems()), doc.problems()
