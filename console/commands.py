"""Commands this part adds to ``mcpgw`` (through the ``mcpgw.commands`` entry point group)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from mcpgw_sdk import settings
from mcpgw_sdk.cli import db_option

APP = Path(__file__).resolve().parent / "app.py"


def streamlit_command(*, host: str, port: int) -> list[str]:
    """The ``streamlit run`` command line of the console: headless, no browser, no usage statistics."""
    return [sys.executable, "-m", "streamlit", "run", str(APP),
            "--server.headless", "true",
            "--server.address", host,
            "--server.port", str(port),
            "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
            "--global.developmentMode", "false",
            "--client.toolbarMode", "minimal",  # no "Deploy" button: this app is not deployed to Streamlit Cloud
            # No full garbage collection after every run: with a document of thousands of tools in the
            # session it took about as long as the run itself, holding the GIL. Python still collects.
            "--runner.postScriptGC", "false"]


def console_env(*, db: str | None, gateway_url: str | None) -> dict[str, str]:
    """The environment the console runs with: the database and gateway URLs resolved once."""
    env = dict(os.environ)
    env["MCPGW_DATABASE_URL"] = settings.get("database_url", db)
    env["MCPGW_GATEWAY_URL"] = settings.get("gateway_url", gateway_url)
    return env


def register(cli):
    """Add ``mcpgw console`` to the ``mcpgw`` click group."""

    @cli.command("console")
    @db_option
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address the console listens on.")
    @click.option("--port", default=8501, show_default=True, type=int, help="Port the console listens on.")
    @settings.option("gateway_url", metavar="URL")
    def console(db, host, port, gateway_url):
        """Serve the Streamlit console (headless: no browser is opened)."""
        env = console_env(db=db, gateway_url=gateway_url)
        click.echo(f"mcpgw console on http://{host}:{port} (database {env['MCPGW_DATABASE_URL'].split('@')[-1]}, "
                   f"gateway {env['MCPGW_GATEWAY_URL']})", err=True)
        sys.stdout.flush()
        sys.stderr.flush()
        # Replace this process, so signals (Ctrl-C, SIGTERM from a supervisor) reach Streamlit itself.
        args = streamlit_command(host=host, port=port)
        os.execve(args[0], args, env)
