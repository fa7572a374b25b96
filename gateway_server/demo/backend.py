"""The demo REST backend: a small in-memory user service on gevent's WSGI server.

``python -m gateway_server.demo.backend --port 5236``

Routes::

    GET    /users                      list (``?q=`` filters by name/email, ``?tag=`` repeated)
    GET    /users/<email>              one user (404 when unknown)
    POST   /users                      create from JSON {email, name, tags?} (201; 409 when it exists)
    PUT    /users/<email>/preferences  replace preferences with the JSON body
    DELETE /users/<email>              delete
    POST   /users/<email>/avatar       multipart upload (field ``file``, more files allowed)
    GET    /users/<email>/avatar       the avatar (image/png; a generated one by default)
    GET    /slow?seconds=N             answer after N seconds
    GET    /status/<code>              answer with that status
    *      /echo[/...]                 the request as JSON: method, path, query, headers, body, form, files

It is raw WSGI (no framework) because the benchmark uses it as the floor.
"""

from __future__ import annotations

import argparse
import base64
import json
import socket
import struct
import threading
import zlib
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote

SEED = [
    {"email": "ada@example.com", "name": "Ada Lovelace", "tags": ["math", "admin"],
     "preferences": {"theme": "dark", "newsletter": True}},
    {"email": "alan@example.com", "name": "Alan Turing", "tags": ["math"],
     "preferences": {"theme": "light", "newsletter": False}},
    {"email": "grace@example.com", "name": "Grace Hopper", "tags": ["navy", "compilers"],
     "preferences": {"theme": "light", "newsletter": True}},
]


def _png(width: int = 8, height: int = 8, rgb: tuple[int, int, int] = (66, 133, 244)) -> bytes:
    """A small solid-colour PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


DEFAULT_AVATAR = _png()


class UserService:
    """The WSGI application: ``UserService()(environ, start_response)``; state lives in memory."""

    def __init__(self):
        self.users: dict[str, dict[str, Any]] = {u["email"]: json.loads(json.dumps(u)) for u in SEED}
        self.avatars: dict[str, tuple[bytes, str]] = {}
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = unquote(environ.get("PATH_INFO", "/"))
        parts = [p for p in path.split("/") if p]
        try:
            status, headers, body = self.route(method, parts, environ)
        except ValueError as exc:
            status, headers, body = _json(400, {"error": str(exc)})
        if status >= 200 and status != 204:
            headers = headers + [("Content-Length", str(len(body)))]
        start_response(f"{status} {_phrase(status)}", headers)
        return [body]

    def route(self, method: str, parts: list[str], environ) -> tuple[int, list[tuple[str, str]], bytes]:
        """Dispatch to a handler; returns (status, headers, body)."""
        if parts and parts[0] == "echo":
            return self.echo(method, environ)
        if parts == ["users"]:
            if method == "GET":
                return self.list_users(environ)
            if method == "POST":
                return self.create_user(_read_json(environ))
            return _json(405, {"error": "method not allowed"})
        if len(parts) >= 2 and parts[0] == "users":
            email = parts[1]
            if len(parts) == 2:
                if method == "GET":
                    user = self.users.get(email)
                    return _json(200, user) if user else _json(404, {"error": f"no user {email}"})
                if method == "DELETE":
                    with self.lock:
                        user = self.users.pop(email, None)
                    return _json(200, {"deleted": email}) if user else _json(404, {"error": f"no user {email}"})
            if len(parts) == 3 and parts[2] == "preferences" and method == "PUT":
                return self.set_preferences(email, _read_json(environ))
            if len(parts) == 3 and parts[2] == "avatar":
                if method == "POST":
                    return self.upload_avatar(email, environ)
                if method == "GET":
                    if email not in self.users:
                        return _json(404, {"error": f"no user {email}"})
                    data, kind = self.avatars.get(email, (DEFAULT_AVATAR, "image/png"))
                    return 200, [("Content-Type", kind)], data
            return _json(405, {"error": "method not allowed"})
        if parts == ["slow"]:
            import gevent

            seconds = float(_query(environ).get("seconds", ["1"])[0])
            gevent.sleep(min(seconds, 120))
            return _json(200, {"slept": seconds})
        if len(parts) == 2 and parts[0] == "status":
            code = int(parts[1])
            if code < 200 or code in (204, 304):  # HTTP forbids a body on these
                return code, [], b""
            return code, [("Content-Type", "text/plain; charset=utf-8")], f"status {code} as requested".encode()
        return _json(404, {"error": f"no route {method} /{'/'.join(parts)}"})

    def list_users(self, environ):
        """GET /users with optional ``q`` and repeated ``tag`` filters."""
        query = _query(environ)
        users = list(self.users.values())
        if "q" in query:
            needle = query["q"][0].lower()
            users = [u for u in users if needle in u["email"].lower() or needle in u["name"].lower()]
        for tag in query.get("tag", []):
            users = [u for u in users if tag in u.get("tags", [])]
        return _json(200, {"users": users, "count": len(users)})

    def create_user(self, data: Any):
        """POST /users."""
        if not isinstance(data, dict) or not data.get("email") or not data.get("name"):
            return _json(400, {"error": "email and name are required"})
        with self.lock:
            if data["email"] in self.users:
                return _json(409, {"error": f"user {data['email']} exists"})
            user = {"email": str(data["email"]), "name": str(data["name"]), "tags": list(data.get("tags") or []),
                    "preferences": dict(data.get("preferences") or {})}
            self.users[user["email"]] = user
        return _json(201, user)

    def set_preferences(self, email: str, data: Any):
        """PUT /users/<email>/preferences."""
        if not isinstance(data, dict):
            return _json(400, {"error": "preferences must be a JSON object"})
        with self.lock:
            user = self.users.get(email)
            if user is None:
                return _json(404, {"error": f"no user {email}"})
            user["preferences"] = data
        return _json(200, user)

    def upload_avatar(self, email: str, environ):
        """POST /users/<email>/avatar (multipart)."""
        from werkzeug.formparser import parse_form_data

        if email not in self.users:
            return _json(404, {"error": f"no user {email}"})
        _stream, form, files = parse_form_data(environ)
        stored = []
        for field, upload in files.items(multi=True):
            data = upload.read()
            stored.append({"field": field, "filename": upload.filename, "size": len(data),
                           "contentType": upload.mimetype})
            if field == "file":
                self.avatars[email] = (data, upload.mimetype or "application/octet-stream")
        if not stored:
            return _json(400, {"error": "no file in the upload"})
        return _json(200, {"email": email, "files": stored, "fields": form.to_dict()})

    def echo(self, method: str, environ):
        """Any method on /echo: the request as JSON (for tests and for trying templates)."""
        from werkzeug.formparser import parse_form_data

        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        out: dict[str, Any] = {"method": method, "path": environ.get("PATH_INFO", ""),
                               "query": _query(environ), "headers": headers}
        kind = environ.get("CONTENT_TYPE", "")
        if kind.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
            _stream, form, files = parse_form_data(environ)
            out["form"] = form.to_dict(flat=False)
            out["files"] = [{"field": f, "filename": u.filename, "contentType": u.mimetype,
                             "content": base64.b64encode(u.read()).decode()} for f, u in files.items(multi=True)]
        else:
            body = _read(environ)
            out["body"] = body.decode("utf-8", errors="replace")
            if kind.startswith("application/json") and body:
                out["json"] = json.loads(body)
        return _json(200, out)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def _json(status: int, data: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(data).encode()


def _query(environ) -> dict[str, list[str]]:
    return parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)


def _read(environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length) if length else b""


def _read_json(environ) -> Any:
    body = _read(environ)
    try:
        return json.loads(body) if body else None
    except ValueError:
        raise ValueError("the body is not valid JSON") from None


def make_server(host: str = "127.0.0.1", port: int = 5236, app=None):
    """A gevent WSGI server for ``app`` (default a fresh :class:`UserService`) with TCP_NODELAY on accepted sockets.

    Keep-alive responses stall ~40 ms without TCP_NODELAY (Nagle meets delayed ACK).
    """
    from gevent.pywsgi import WSGIServer

    class Server(WSGIServer):
        def handle(self, sock, address):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle(sock, address)

    return Server((host, port), app or UserService(), log=None)


def main(argv: list[str] | None = None) -> None:
    """Run the demo backend until interrupted."""
    import signal

    import gevent

    parser = argparse.ArgumentParser(description="mcpgw demo REST backend (in-memory users)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=5236, help="port to listen on")
    options = parser.parse_args(argv)
    server = make_server(options.host, options.port)
    gevent.signal_handler(signal.SIGTERM, server.stop)
    gevent.signal_handler(signal.SIGINT, server.stop)
    print(f"demo backend on http://{options.host}:{options.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
