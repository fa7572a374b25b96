"""``mcpgw serve``: run the gateway on gevent's WSGI server.

gevent must patch the standard library before peewee, requests or psycopg2 are
imported. When another plugin of the ``mcpgw`` command already imported one of
them, ``serve`` re-executes itself as ``python -m gateway_server`` (which
patches first) instead of patching too late.
"""

from __future__ import annotations

import os
import sys

import click

from mcpgw_sdk import settings

_SENSITIVE = ("peewee", "psycopg2", "pymysql", "requests", "urllib3", "ssl", "redis")


def patch() -> None:
    """Patch the standard library for gevent, and psycopg2 when it is installed (entry points only)."""
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
    try:
        from psycogreen.gevent import patch_psycopg
    except ImportError:
        return
    try:
        patch_psycopg()
    except ImportError:  # psycopg2 itself is not installed
        pass


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft limit on open files to the hard limit (entry points only); return ``(soft, hard)``.

    Every client connection holds a descriptor: the usual soft limit of 1024 lets a thousand
    idle clients stop the gateway from accepting, ``/healthz`` included.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return (-1, -1)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if soft == resource.RLIM_INFINITY or (soft >= target):
        return soft, hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError):  # e.g. above the kernel's nr_open: keep what we have
        return soft, hard
    return target, hard


def listen_error(host: str, port: int, exc: OSError) -> str:
    """``cannot listen on 127.0.0.1:5235: address already in use`` for a failed bind."""
    import errno

    reason = "address already in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc)).lower()
    return f"cannot listen on {host}:{port}: {reason}"


def run(*, db: str | None, host: str | None, port: int | None, reload_interval: float | None) -> None:
    """Serve the gateway until SIGTERM/SIGINT (call :func:`patch` first)."""
    import http.client
    import signal
    import socket
    import time

    from gevent.pywsgi import Input, OldMessage, WSGIHandler, WSGIServer

    from . import logs
    from .app import create_app
    from .backends.http import parse_headers

    logs.setup(level=settings.get("log_level"), fmt=settings.get("log_format"))
    import logging

    log = logging.getLogger("mcpgw.gateway")
    files, _ = raise_fd_limit()
    header_timeout = settings.get("header_timeout")
    body_timeout = settings.get("body_timeout")
    host = settings.get("host", host)
    port = settings.get("port", port)
    app = create_app(store_url=db, host=host, port=port, reload_interval=reload_interval)
    app.start()
    import gevent

    class HeaderTimeout(ValueError):
        """The request line and headers did not arrive within ``header_timeout`` (answered 400, then closed)."""

    class DeadlineInput(Input):
        """gevent's request body, whose discard of an unread rest gives up after ``body_timeout``."""

        __slots__ = ()

        def _discard(self):
            if self._chunked_input_error:
                return
            if not self.chunked_input and self.position >= (self.content_length or 0):
                return  # the body was read in full (the usual case): nothing to discard, no timer to arm
            try:
                with gevent.Timeout(body_timeout, TimeoutError("request body timed out")):
                    super()._discard()
            except TimeoutError:
                self._chunked_input_error = True  # gevent's mark for "state unknown": the connection closes
                raise

    class NoDelayHandler(WSGIHandler):
        """Sets TCP_NODELAY: without it keep-alive responses stall ~40 ms (Nagle + delayed ACK).

        Also sends the status line, headers and a small body in one write (gevent sends
        the headers first, then the body: two syscalls and two packets per JSON answer).
        Bounds in time what a client may hold: the request line and headers must arrive
        within ``header_timeout`` (which is also the keep-alive idle time), and a body the
        application left unread is discarded for at most ``body_timeout`` before closing.
        """

        def __init__(self, sock, address, server, rfile=None):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self._header_deadline = 0.0
            super().__init__(sock, address, server, rfile)

        def read_requestline(self):
            self._header_deadline = time.monotonic() + header_timeout
            with gevent.Timeout(header_timeout, TimeoutError("request line timed out")):
                return super().read_requestline()

        def read_request(self, raw_requestline):
            left = self._header_deadline - time.monotonic()
            if left <= 0:
                raise HeaderTimeout("request headers timed out")
            with gevent.Timeout(left, HeaderTimeout("request headers timed out")):
                return super().read_request(raw_requestline)

        def _handle_client_error(self, ex):
            if isinstance(ex, HeaderTimeout):
                return ("408", b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            return super()._handle_client_error(ex)

        def get_environ(self):
            environ = super().get_environ()
            self.wsgi_input.__class__ = DeadlineInput
            environ["mcpgw.socket"] = self.socket  # modern requests watch it for a client that hung up
            return environ

        def run_application(self):
            try:
                super().run_application()
            finally:
                if self.environ.get("mcpgw.body_abandoned"):  # the app gave up on the body: do not wait again
                    self.wsgi_input._chunked_input_error = True

        def handle_one_response(self):
            super().handle_one_response()
            if self.wsgi_input is not None and self.wsgi_input._chunked_input_error:
                self.close_connection = True  # the stream's state is unknown: never read a next request from it

        def MessageClass(self, fp, *args):
            # gevent parses request headers with the email package; this reads the same lines, ~5x cheaper.
            try:
                return parse_headers(fp, OldMessage)
            except http.client.LineTooLong:
                message = OldMessage()
                message.status = "Line too long"
                return message

        def _write_with_headers(self, data):
            if not data or len(data) > 65536 or (self.provided_content_length is None
                                                 and not hasattr(self.result, "__len__")):
                return super()._write_with_headers(data)  # streams (SSE) and large bodies: gevent's way
            self.headers_sent = True
            self.finalize_headers()
            out = bytearray(b"HTTP/1.1 ")
            out += self.status
            out += b"\r\n"
            for header, value in self.response_headers:
                out += header + b": " + value + b"\r\n"
            out += b"\r\n"
            out += data
            self._sendall(out)

    server = WSGIServer((host, port), app, handler_class=NoDelayHandler, log=None,
                        error_log=logging.getLogger("mcpgw.http"))
    try:
        server.init_socket()
    except OSError as exc:
        app.stop()
        raise click.ClickException(listen_error(host, port, exc)) from None

    def shutdown(*_):
        log.info("shutting down")
        app.gateway.close_listeners()  # subscriptions/listen streams get their final result first
        server.stop(timeout=2)

    gevent.signal_handler(signal.SIGTERM, shutdown)
    gevent.signal_handler(signal.SIGINT, shutdown)
    log.info("gateway listening on http://%s:%s (config revision %s, open files limit %s)", host, port,
             app.gateway.snapshot.revision, files)
    try:
        server.serve_forever()
    finally:
        app.stop()


def serve_options(func):
    """The options of ``serve`` (shared with ``python -m gateway_server``)."""
    func = click.option("--reload-interval", type=float, default=None,
                        help=settings.SETTINGS["reload_interval"].help + " [env: MCPGW_RELOAD_INTERVAL]")(func)
    func = click.option("--port", type=int, default=None,
                        help=settings.SETTINGS["port"].help + " [env: MCPGW_PORT; default 5235]")(func)
    func = click.option("--host", default=None,
                        help=settings.SETTINGS["host"].help + " [env: MCPGW_HOST; default 127.0.0.1]")(func)
    func = click.option("--db", "db", default=None, metavar="URL",
                        help=settings.SETTINGS["database_url"].help + " [env: MCPGW_DATABASE_URL]")(func)
    return func


@click.command("serve")
@serve_options
def serve(db, host, port, reload_interval):
    """Serve MCP endpoints for every stored config (the gateway)."""
    if any(name in sys.modules for name in _SENSITIVE):
        argv = [sys.executable, "-m", "gateway_server"]
        for flag, value in (("--db", db), ("--host", host), ("--port", port), ("--reload-interval", reload_interval)):
            if value is not None:
                argv += [flag, str(value)]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)
    patch()
    run(db=db, host=host, port=port, reload_interval=reload_interval)


def register(cli):
    """Add ``serve`` to the ``mcpgw`` click group."""
    cli.add_command(serve)
