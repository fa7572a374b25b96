"""``mcpgw api``: serve the management API with gevent (added through the ``mcpgw.commands`` entry point)."""

from __future__ import annotations

import sys

import click

from mcpgw_sdk.settings import Settings, option, resolve


def _patch() -> None:
    """Make the process cooperative before peewee, requests or psycopg2 are imported."""
    from gevent import monkey

    monkey.patch_all()
    try:
        from psycogreen.gevent import patch_psycopg
    except ImportError:  # the postgresql extra is not installed
        return
    patch_psycopg()


def serve(*, db: str | None, host: str, port: int, upgrade: bool = False,
          settings: Settings | None = None) -> None:
    """Open the store, build the app and serve it until interrupted (call after :func:`_patch`).

    ``settings`` defaults to :func:`~mcpgw_sdk.settings.resolve`'s; ``db`` overrides its ``database_url``.
    """
    import logging
    import socket

    from gevent.pywsgi import WSGIServer

    from mcpgw_sdk.opening import open_store

    from ..commands import listen_error
    from .app import create_app

    resolved = (settings or resolve()).replace(database_url=db)
    logging.basicConfig(level=resolved.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    store = open_store(resolved.database_url, check=not upgrade)
    if upgrade:
        store.upgrade()
    app = create_app(store=store, jwt_secret=resolved.jwt_secret or None)

    class Server(WSGIServer):
        def wrap_socket_and_handle(self, client_socket, address):
            # without TCP_NODELAY every keep-alive answer stalls ~40 ms (Nagle + delayed ACK)
            client_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().wrap_socket_and_handle(client_socket, address)

    server = Server((host, port), app, log=None, error_log=logging.getLogger("mcpgw.api.http"))
    try:
        server.init_socket()
    except OSError as exc:
        store.close()
        raise click.ClickException(listen_error(host, port, exc)) from None
    click.echo(f"mcpgw api: http://{host}:{port}/api/v1 (store {store.url})", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


def _options(func):
    func = click.option("--upgrade", is_flag=True, help="Apply pending database migrations before serving.")(func)
    func = option("api_port", "--port", "port")(func)
    func = option("api_host", "--host", "host")(func)
    return option("database_url", "--db", "db", metavar="URL")(func)


@click.command("api")
@_options
def api_command(db, host, port, upgrade):
    """Serve the management REST API (/api/v1) with gevent."""
    _patch()
    resolved = resolve({"database_url": db, "api_host": host, "api_port": port})
    serve(db=db, host=resolved.api_host, port=resolved.api_port, upgrade=upgrade, settings=resolved)


def register(cli):
    """Add ``mcpgw api`` to the ``mcpgw`` click group."""
    cli.add_command(api_command)


def main(argv=None):
    """Run ``mcpgw api`` alone: ``python -m gateway_server.api --db URL --port N``."""
    from mcpgw_sdk.errors import McpgwError

    try:
        return api_command.main(args=argv, prog_name="mcpgw api", standalone_mode=False)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except McpgwError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
