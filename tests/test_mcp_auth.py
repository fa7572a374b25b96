"""MCP endpoint auth decisions: API keys and OAuth 2.1 tokens from a real local issuer (JWKS over HTTP)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway_server.mcp_auth import (
    AuthFailure,
    KeyIndex,
    OAuthVerifier,
    Principal,
    auth_config_errors,
    authenticate,
    backend_headers,
    hash_secret,
    metadata_path,
    protected_resource_metadata,
)
from mcpgw_sdk.config_model import Auth, Router
from mcpgw_sdk.records import ApiKey
from tests.auth_issuer import Issuer

RESOURCE = "http://127.0.0.1:5235/acme/mcp"
METADATA = "http://127.0.0.1:5235" + metadata_path("/acme")


def _key(id, secret, *, tenant="acme", revoked=False, expires_at=None, tools=(), servers=()):
    return ApiKey(id=id, name=f"k{id}", prefix=secret[:6], user="alice", tenant=tenant, tools=tools,
                  servers=servers, revoked=revoked, expires_at=expires_at, secret_hash=hash_secret(secret))


@pytest.fixture
def keys():
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    return KeyIndex([
        _key(1, "good-secret", tools=("get_user",), servers=("users",)),
        _key(2, "revoked-secret", revoked=True),
        _key(3, "expired-secret", expires_at=past),
        _key(4, "other-tenant", tenant="globex"),
        _key(5, "naive-future", expires_at=datetime.now(timezone.utc).replace(tzinfo=None) + timedelta(hours=1)),
    ])


def _apikey(headers, keys):
    return authenticate(Auth(mode="apikey"), headers, keys=keys, tenant="acme", resource_url=RESOURCE,
                        metadata_url=METADATA, oauth=None)


def test_open_router_needs_no_credentials(keys):
    assert authenticate(None, {}, keys=keys, tenant="acme", resource_url=RESOURCE, metadata_url=METADATA) is None
    assert authenticate(Auth(mode="none"), {}, keys=keys, tenant="acme", resource_url=RESOURCE,
                        metadata_url=METADATA) is None


def test_apikey_bearer_and_header_give_scoped_principal(keys):
    p = _apikey({"authorization": "Bearer good-secret"}, keys)
    assert p == Principal(user="alice", key_id=1, tenant="acme", tools=frozenset({"get_user"}),
                          servers=frozenset({"users"}))
    assert p.allows("users", "get_user") and not p.allows("users", "delete_user")
    assert not p.allows("billing", "get_user")
    assert _apikey({"x-api-key": "good-secret"}, keys).key_id == 1
    unscoped = _apikey({"x-api-key": "naive-future"}, keys)
    assert unscoped.tools is None and unscoped.servers is None and unscoped.allows("any", "thing")


@pytest.mark.parametrize("headers", [
    {},
    {"authorization": "Basic Zm9vOmJhcg=="},
    {"authorization": "Bearer unknown"},
    {"x-api-key": "revoked-secret"},
    {"x-api-key": "expired-secret"},
    {"authorization": "Bearer other-tenant"},
])
def test_apikey_refusals_are_401(keys, headers):
    with pytest.raises(AuthFailure) as info:
        _apikey(headers, keys)
    assert info.value.status == 401
    # not Bearer: MCP clients answer a Bearer challenge with OAuth discovery, which an API-key router lacks
    assert info.value.www_authenticate.startswith('ApiKey realm="mcpgw", header="X-API-Key"')
    assert "Bearer" not in info.value.www_authenticate and "resource_metadata" not in info.value.www_authenticate
    assert info.value.body["error"] in ("invalid_request", "invalid_token")
    if info.value.body["error"] == "invalid_token":
        assert info.value.www_authenticate.endswith(', error="invalid_token"')


def test_unknown_mode_is_a_clear_error(keys):
    with pytest.raises(ValueError, match="auth.mode"):
        authenticate(Auth(mode="basic"), {}, keys=keys, tenant="acme", resource_url=RESOURCE, metadata_url=METADATA)


# -- OAuth 2.1 with a real issuer serving its JWKS over HTTP ------------------------------------------


@pytest.fixture
def issuer():
    server = Issuer(audience=RESOURCE)
    yield server
    server.close()


def _oauth(issuer, token, *, verifier=None, auth=None):
    auth = auth or {"mode": "oauth2", "issuer": issuer.url, "jwksUri": issuer.url + "/jwks.json",
                    "scopes": ["mcp:tools"]}
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return authenticate(Auth.from_dict(auth), headers, keys=KeyIndex(()), tenant="acme", resource_url=RESOURCE,
                        metadata_url=METADATA, oauth=verifier)


def test_oauth_valid_token_accepted_and_jwks_cached(issuer):
    verifier = OAuthVerifier(issuer=issuer.url, jwks_uri=issuer.url + "/jwks.json", scopes=["mcp:tools"])
    for _ in range(3):
        p = _oauth(issuer, issuer.token(scope="mcp:tools other"), verifier=verifier)
        assert p.user == "user-42" and p.tenant == "acme" and p.key_id is None
        assert p.scopes == {"mcp:tools", "other"} and p.tools is None
    assert issuer.jwks_hits == 1


def test_oauth_discovers_jwks_from_issuer_metadata(issuer):
    auth = {"mode": "oauth2", "issuer": issuer.url, "audience": "api://mcp"}
    p = _oauth(issuer, issuer.token(aud="api://mcp", scope=None, scp=["x"]), auth=auth)
    assert p.user == "user-42" and p.scopes == {"x"}


@pytest.mark.parametrize("case", ["missing", "wrong_audience", "expired", "unknown_kid", "foreign_key",
                                  "wrong_issuer", "garbage"])
def test_oauth_invalid_tokens_are_401_with_resource_metadata(issuer, case):
    token = {
        "missing": lambda: None,
        "wrong_audience": lambda: issuer.token(aud="http://elsewhere/mcp"),
        "expired": lambda: issuer.token(exp_in=-3600),
        "unknown_kid": lambda: issuer.token(kid='rotated"\r\nX-Injected: 1'),
        "foreign_key": lambda: issuer.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "wrong_issuer": lambda: issuer.token(iss="http://evil"),
        "garbage": lambda: "not.a.jwt",
    }[case]()
    with pytest.raises(AuthFailure) as info:
        _oauth(issuer, token)
    failure = info.value
    assert failure.status == 401
    assert f'resource_metadata="{METADATA}"' in failure.www_authenticate
    assert "\n" not in failure.www_authenticate and "\r" not in failure.www_authenticate
    if case != "missing":
        assert 'error="invalid_token"' in failure.www_authenticate
        assert failure.body["error"] == "invalid_token"


def test_oauth_missing_scope_is_403_insufficient_scope(issuer):
    with pytest.raises(AuthFailure) as info:
        _oauth(issuer, issuer.token(scope="read"))
    assert info.value.status == 403
    assert info.value.body["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in info.value.www_authenticate
    assert 'scope="mcp:tools"' in info.value.www_authenticate


def test_protected_resource_metadata_is_rfc9728():
    auth = {"mode": "oauth2", "issuer": "https://idp.example", "scopes": ["mcp:tools"]}
    assert protected_resource_metadata(Auth.from_dict(auth), RESOURCE) == {
        "resource": RESOURCE,
        "authorization_servers": ["https://idp.example"],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
    }
    assert metadata_path("/gateway/user/") == "/.well-known/oauth-protected-resource/gateway/user"


def test_auth_config_errors_name_the_field():
    assert auth_config_errors(None) == [] and auth_config_errors({"mode": "apikey"}) == []
    assert auth_config_errors({"mode": "oauth2", "issuer": "https://idp", "scopes": ["a"], "audience": "x"}) == []
    errors = auth_config_errors({"mode": "oauth2", "jwks": "x", "scopes": 3}, "routers[0].auth")
    assert "routers[0].auth: unknown key 'jwks'; allowed keys: mode, issuer, jwksUri, audience, scopes" in errors
    assert "routers[0].auth.scopes: expected a string or a list of strings, got integer" in errors
    assert any(e.startswith("routers[0].auth.issuer: required") for e in errors)
    assert auth_config_errors({"mode": "basic"}) == ["auth.mode: 'basic' is not one of apikey, oauth2, none"]
    assert auth_config_errors({"mode": "oauth2", "issuer": "idp"}) == ["auth.issuer: 'idp' is not an http(s) URL"]


def _snapshot_doc(auth):
    return {"name": "locked", "tenant": "acme", "routers": [{"prefix": "/acme/x", "server": "s", "auth": auth}],
            "servers": [{"name": "s"}], "tools": [{"name": "t", "endpoint": "http://127.0.0.1:1/t"}]}


class _NoBackend:
    def __init__(self, *, name, **_):
        self.name = name

    def list_tools(self):
        return []

    def close(self):
        pass


def test_unusable_auth_block_keeps_the_last_good_route():
    from gateway_server.snapshot import _check_auth, build_snapshot
    from mcpgw_sdk.errors import ConfigError
    from mcpgw_sdk.records import ConfigSet, Document

    def config(revision, auth):
        return ConfigSet(revision, (Document("acme", "locked", _snapshot_doc(auth), revision),), (), ())

    good = {"mode": "oauth2", "issuer": "https://idp.example", "scopes": "mcp:tools"}
    first = build_snapshot(config(1, good), make=lambda kind, **kw: _NoBackend(**kw))
    assert not first.errors and first.routes["/acme/x"].auth == Auth.from_dict(good)
    second = build_snapshot(config(2, {"mode": "oauth2", "audience": "x"}), first,
                            make=lambda kind, **kw: _NoBackend(**kw))
    assert second.errors["acme/locked"] == [
        "acme/locked: routers[0].auth.issuer: required for mode oauth2 (or give routers[0].auth.jwksUri)"]
    assert second.routes["/acme/x"].auth == Auth.from_dict(good)  # still served with the last good block
    # the route builder refuses it too, whatever let it through validation
    with pytest.raises(ConfigError, match=r"routers\[/acme/x\]\.auth\.issuer: required"):
        _check_auth("acme/locked", "/acme/x", Router.from_dict({"prefix": "/acme/x", "auth": {"mode": "oauth2"}}))
    _check_auth("acme/locked", "/acme/x", Router.from_dict({"prefix": "/acme/x"}))
    _check_auth("acme/locked", "/acme/x", Router.from_dict({"prefix": "/acme/x", "auth": {"mode": "apikey"}}))


def test_backend_headers_drop_the_gateway_credential_only_when_it_is_checked():
    headers = {"authorization": "Bearer t", "x-api-key": "k", "accept": "*/*"}
    for mode in ("apikey", "oauth2"):
        assert backend_headers(Auth(mode=mode), headers) == {"accept": "*/*"}
    assert backend_headers(None, headers) is headers
    assert backend_headers(Auth(mode="none"), headers) is headers
    assert headers == {"authorization": "Bearer t", "x-api-key": "k", "accept": "*/*"}  # not changed in place
