"""``python -m gateway_server [--db URL] [--host H] [--port P]``: the gateway, gevent patched first."""

from gevent import monkey

monkey.patch_all()

import click  # noqa: E402

from gateway_server.commands import patch, run, serve_options  # noqa: E402
from mcpgw_sdk.cli import cli_message  # noqa: E402
from mcpgw_sdk.errors import McpgwError  # noqa: E402


@click.command("serve")
@serve_options
def main(db, host, port, reload_interval):
    """Serve MCP endpoints for every stored config (the gateway)."""
    patch()
    try:
        run(db=db, host=host, port=port, reload_interval=reload_interval)
    except McpgwError as exc:
        raise click.ClickException(cli_message(click.get_current_context(), str(exc))) from None


if __name__ == "__main__":
    import sys

    args = sys.argv[1:]
    if args and args[0] == "serve":
        args = args[1:]
    main.main(args=args, prog_name="python -m gateway_server")
