"""``mcpgw demo``: the demo REST backend, its config document, and the command that runs it all.

Added to ``mcpgw`` through the ``mcpgw.commands`` entry point group.
"""

from __future__ import annotations


def register(cli):
    """Add ``mcpgw demo`` to the ``mcpgw`` click group."""
    import click

    from mcpgw_sdk.cli import db_option

    @cli.command("demo")
    @db_option
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address every demo service listens on.")
    @click.option("--port", default=5235, show_default=True, type=int, help="Port of the gateway.")
    @click.option("--backend-port", default=5236, show_default=True, type=int,
                  help="Port of the demo REST backend (MCPGW_DEMO_BACKEND_URL uses an external one instead).")
    @click.option("--api-port", default=5234, show_default=True, type=int, help="Port of the management API.")
    @click.option("--console-port", default=8501, show_default=True, type=int, help="Port of the console.")
    @click.option("--no-console", is_flag=True, help="Do not start the console.")
    @click.option("--no-api", is_flag=True, help="Do not start the management API.")
    def demo(db, host, port, backend_port, api_port, console_port, no_console, no_api):
        """Run everything at once: demo backend, gateway, management API and console (Ctrl-C stops all)."""
        from .run import run_demo

        code = run_demo(cli=cli, db=db, host=host, port=port, backend_port=backend_port, api_port=api_port,
                        console_port=console_port, console=not no_console, api=not no_api,
                        echo=lambda text: click.echo(text))
        click.get_current_context().exit(code)
