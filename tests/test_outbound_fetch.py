"""OpenAPI import by URL, the console's importer and JWKS/issuer-metadata fetches pass the outbound guard.

The URL an admin or a document names is trusted as written; a redirect or a discovered ``jwks_uri``
leading to an internal host that nobody wrote (a listener on 127.0.0.2) is refused before connecting.
"""

from __future__ import annotations

import json
import threading

import jwt
import pytest

from mcpgw_sdk.errors import ConfigError
from tests.helpers import _QuietHandler, _ThreadingServer, wsgi_server
from tests.test_api import Api, seed, start_api

SPEC = "openapi: 3.0.0\ninfo: {title: t, version: '1'}\nservers: [{url: 'https://api.example.com'}]\npaths:\n  /a:\n    get: {operationId: getA, responses: {'200': {description: ok}}}\n"


def _start(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def internal():
    """127.0.0.2: serves a valid spec and a JWKS to whoever reaches it; yields (port, hits)."""
    from wsgiref.simple_server import make_server

    hits: list[str] = []

    def app(environ, start_response):
        hits.append(environ["PATH_INFO"])
        body = SPEC if environ["PATH_INFO"].endswith(".yaml") else json.dumps({"keys": []})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body.encode()]

    try:
        server = _start(make_server("127.0.0.2", 0, app, server_class=_ThreadingServer, handler_class=_QuietHandler))
    except OSError as exc:  # pragma: no cover - every Linux routes 127/8 to lo
        pytest.skip(f"cannot bind 127.0.0.2: {exc}")
    yield server.server_port, hits
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def front(internal):
    """127.0.0.1: /spec.yaml serves a spec, /to-internal redirects to 127.0.0.2, the well-known metadata
    names a jwks_uri on 127.0.0.2."""
    port, _ = internal

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/spec.yaml":
            start_response("200 OK", [("Content-Type", "text/yaml")])
            return [SPEC.encode()]
        if path == "/to-internal":
            start_response("302 Found", [("Location", f"http://127.0.0.2:{port}/spec.yaml")])
            return [b""]
        if path.startswith("/.well-known/"):
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"jwks_uri": f"http://127.0.0.2:{port}/jwks"}).encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no"]

    server = _start(wsgi_server(app))
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    url = f"sqlite:///{tmp / 'api.db'}"
    store = seed(url)
    base, proc = start_api(url, tmp)
    yield Api(base, store, proc)
    proc.stop()
    store.close()


def test_openapi_import_by_url_refuses_a_redirect_to_an_internal_host(api, front, internal):
    _, hits = internal
    admin = api.login("admin")
    ok = admin.post("import/openapi", json={"url": f"{front}/spec.yaml", "name": "fetched", "tenant": "acme",
                                            "dry_run": True})
    assert ok.status_code == 200 and ok.json()["tools"] == ["getA"], ok.text  # the admin's own URL: loopback is fine
    before = len(hits)
    refused = admin.post("import/openapi", json={"url": f"{front}/to-internal", "name": "fetched2",
                                                 "tenant": "acme", "dry_run": True})
    assert refused.status_code == 422, refused.text
    assert "refused: 127.0.0.2 is a loopback/private address" in refused.text
    assert len(hits) == before


def test_console_importer_refuses_a_redirect_to_an_internal_host(front, internal):
    from console import importing

    _, hits = internal
    assert "getA" in importing.fetch(f"{front}/spec.yaml", trusted=True)  # an admin's loopback URL
    with pytest.raises(ConfigError, match="loopback/private address"):
        importing.fetch(f"{front}/spec.yaml")  # a member's URL must be public
    before = len(hits)
    with pytest.raises(ConfigError, match="refused: 127.0.0.2 is a loopback/private address"):
        importing.fetch(f"{front}/to-internal", trusted=True)
    with pytest.raises(ConfigError, match="link-local/metadata"):
        importing.fetch("http://169.254.169.254/latest/meta-data/")
    assert len(hits) == before


def test_a_discovered_jwks_uri_on_an_internal_host_is_refused(front, internal):
    from gateway_server.mcp_auth import OAuthVerifier

    _, hits = internal
    before = len(hits)
    token = jwt.encode({"sub": "x"}, "k" * 32, algorithm="HS256", headers={"kid": "a"})
    verifier = OAuthVerifier(issuer=front, timeout=3)
    with pytest.raises(jwt.PyJWKClientError, match="refused: 127.0.0.2 is a loopback/private address"):
        verifier.verify(token, resource_url="http://127.0.0.1/x/mcp")
    assert len(hits) == before
    # the same JWKS host is fine when the auth block names it
    port, _ = internal
    named = OAuthVerifier(issuer=front, jwks_uri=f"http://127.0.0.2:{port}/jwks", timeout=3)
    with pytest.raises(jwt.PyJWTError) as caught:
        named.verify(token, resource_url="http://127.0.0.1/x/mcp")
    assert "refused" not in str(caught.value) and len(hits) > before


def test_a_members_spec_string_is_parsed_as_text_never_fetched_or_opened(api, internal, tmp_path):
    port, hits = internal
    local_file = tmp_path / "spec.yaml"
    local_file.write_text(SPEC)  # a valid spec: only opening the path would make the import succeed
    alice = api.login("alice")  # a member of acme
    before = len(hits)
    as_url = alice.post("import/openapi", json={"spec": f"http://127.0.0.2:{port}/spec.yaml", "name": "m1",
                                                "tenant": "acme", "dry_run": True})
    assert as_url.status_code == 422, as_url.text
    assert len(hits) == before  # the internal listener was never asked
    as_path = alice.post("import/openapi", json={"spec": str(local_file), "name": "m2", "tenant": "acme",
                                                 "dry_run": True})
    assert as_path.status_code == 422 and "not an OpenAPI or Swagger document" in as_path.text, as_path.text
    as_text = alice.post("import/openapi", json={"spec": SPEC, "name": "m3", "tenant": "acme", "dry_run": True})
    assert as_text.status_code == 200 and as_text.json()["tools"] == ["getA"], as_text.text
