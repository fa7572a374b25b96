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


def run(*, db: str | None, host: str | None, port: int | None, reload_interval: float | None) -> None:
    """Serve the gateway until SIGTERM/SIGINT (call :func:`patch` first)."""
    import signal
    import socket

    from gevent.pywsgi import WSGIHandler, WSGIServer

    from . import logs
    from .app import create_app

    logs.setup(level=settings.get("log_level"), fmt=settings.get("log_format"))
    import logging

    log = logging.getLogger("mcpgw.gateway")
    host = settings.get("host", host)
    port = settings.get("port", port)
    app = create_app(store_url=db, host=host, port=port, reload_interval=reload_interval)
    app.start()

    class NoDelayHandler(WSGIHandler):
        """Sets TCP_NODELAY: without it keep-alive responses stall ~40 ms (Nagle + delayed ACK)."""

        def __init__(self, sock, address, server, rfile=None):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            super().__init__(sock, address, server, rfile)

    server = WSGIServer((host, port), app, handler_class=NoDelayHandler, log=None,
                        error_log=logging.getLogger("mcpgw.http"))

    def shutdown(*_):
        log.info("shutting down")
        server.stop(timeout=2)

    import gevent

    gevent.signal_handler(signal.SIGTERM, shutdown)
    gevent.signal_handler(signal.SIGINT, shutdown)
    log.info("gateway listening on http://%s:%s (config revision %s)", host, port, app.gateway.snapshot.revision)
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
