"""A real OAuth 2.1 authorization server for tests, on a free loopback port.

It serves its metadata (``/.well-known/oauth-authorization-server`` and
``/.well-known/openid-configuration``), a JWKS (``/jwks.json``) and a token
endpoint (``/token``, grant ``client_credentials`` with ``client_secret_basic``
or ``client_secret_post``), signs RS256 JWTs with a key generated at start, and
logs every request path in :attr:`Issuer.requests` so tests can see who asked
for what.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

CLIENT_ID = "test-client"
CLIENT_SECRET = "test-client-secret"


class Issuer:
    """A tiny authorization server: metadata, JWKS, a client_credentials token endpoint, a signer.

    ``audience`` is the ``aud`` of the tokens it issues by default (and from ``/token``);
    ``requests`` lists ``(method, path)`` of every request served, in order.
    """

    def __init__(self, *, audience: str = "mcpgw-test", kid: str = "k1"):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = kid
        self.audience = audience
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll interval: shutdown() waits for the serving loop's next poll (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def jwks_hits(self) -> int:
        """How many times the JWKS was fetched."""
        return self.paths().count("/jwks.json")

    def paths(self) -> list[str]:
        """The paths requested so far (query strings removed)."""
        with self._lock:
            return [path for _, path in self.requests]

    def metadata(self) -> dict:
        """The RFC 8414 authorization-server metadata."""
        return {"issuer": self.url, "jwks_uri": self.url + "/jwks.json", "token_endpoint": self.url + "/token",
                "authorization_endpoint": self.url + "/authorize", "response_types_supported": ["code"],
                "grant_types_supported": ["client_credentials"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"]}

    def jwks(self) -> dict:
        """The public key set."""
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update(kid=self.kid, use="sig", alg="RS256")
        return {"keys": [jwk]}

    def token(self, *, aud: str | list[str] | None = None, exp_in: int = 300, scope: str | None = "mcp:tools",
              kid: str | None = None, key=None, **claims) -> str:
        """A signed access token (``aud`` defaults to :attr:`audience`; extra claims override)."""
        now = int(time.time())
        payload = {"iss": self.url, "sub": "user-42", "aud": aud or self.audience, "iat": now, "exp": now + exp_in,
                   **claims}
        if scope is not None:
            payload["scope"] = scope
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": kid or self.kid})

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()


def _client_of(headers, form: dict[str, str]) -> tuple[str | None, str | None]:
    value = headers.get("Authorization") or ""
    if value.lower().startswith("basic "):
        user, _, secret = base64.b64decode(value[6:]).decode().partition(":")
        return unquote(user), unquote(secret)
    return form.get("client_id"), form.get("client_secret")


def _handler(issuer: Issuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _log(self) -> str:
            path = urlsplit(self.path).path
            with issuer._lock:
                issuer.requests.append((self.command, path))
            return path

        def _json(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802 - http.server's spelling
            path = self._log()
            if path == "/jwks.json":
                self._json(200, issuer.jwks())
            elif path in ("/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"):
                self._json(200, issuer.metadata())
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self):  # noqa: N802
            path = self._log()
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            if path != "/token":
                self._json(404, {"error": "not_found"})
                return
            if form.get("grant_type") != "client_credentials":
                self._json(400, {"error": "unsupported_grant_type"})
                return
            if _client_of(self.headers, form) != (CLIENT_ID, CLIENT_SECRET):
                self._json(401, {"error": "invalid_client"})
                return
            scope = form.get("scope") or "mcp:tools"
            self._json(200, {"access_token": issuer.token(scope=scope), "token_type": "Bearer", "expires_in": 300,
                             "scope": scope})

        def log_message(self, *args):
            pass

    return Handler
