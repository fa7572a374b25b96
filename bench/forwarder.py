"""The floor: a raw gevent WSGI forwarder that turns one tools/call into one backend GET.

``python bench/forwarder.py --port 5237 --backend http://127.0.0.1:5236``

It answers ``tools/call`` JSON-RPC posts by calling ``GET /users/<email>`` on the
backend with a pooled keep-alive ``http.client`` connection and wrapping the
body in a JSON-RPC result — the least any gateway has to do for that call, with
no framework, routing, sessions, validation or templates. The benchmark
compares the gateway against it.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
from urllib.parse import quote, urlsplit  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402


class Pool:
    """Idle keep-alive connections to one backend (greenlets take one each; no lock needed in gevent)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.idle: list[http.client.HTTPConnection] = []

    def get(self, path: str) -> bytes:
        """GET ``path``; retry once on a connection the backend closed."""
        for attempt in (0, 1):
            conn = self.idle.pop() if self.idle else self._new()
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                if attempt:
                    raise
                continue
            self.idle.append(conn)
            return body
        raise RuntimeError("unreachable")

    def _new(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn


def make_app(backend: str):
    """The WSGI app forwarding to ``backend``."""
    parts = urlsplit(backend)
    pool = Pool(parts.hostname, parts.port or 80)

    def app(environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        message = json.loads(environ["wsgi.input"].read(length))
        email = message["params"]["arguments"]["email"]
        body = pool.get("/users/" + quote(email, safe="@"))
        answer = json.dumps({"jsonrpc": "2.0", "id": message.get("id"),
                             "result": {"content": [{"type": "text", "text": body.decode()}], "isError": False}})
        data = answer.encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return app


def main() -> None:
    """Run the forwarder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5237)
    parser.add_argument("--backend", default="http://127.0.0.1:5236")
    options = parser.parse_args()

    class Server(WSGIServer):
        def handle(self, sock, address):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle(sock, address)

    Server(("127.0.0.1", options.port), make_app(options.backend), log=None).serve_forever()


if __name__ == "__main__":
    main()
