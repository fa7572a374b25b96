"""The ``mcpgw`` command line (click).

SDK commands live here; other parts (the gateway, the API, the console) add
theirs through the ``mcpgw.commands`` entry point group, so the SDK imports none
of them.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import click

from . import settings
from .errors import McpgwError


def db_option(func):
    """The ``--db URL`` option every command takes (``MCPGW_DATABASE_URL`` sets it too)."""
    return click.option("--db", "db", default=None, metavar="URL",
                        help=settings.SETTINGS["database_url"].help + " [env: MCPGW_DATABASE_URL]")(func)


class McpgwGroup(click.Group):
    """A group that turns McpgwError into a one-line message and exit code 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except McpgwError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(1)


@click.group(cls=McpgwGroup)
@click.version_option(package_name="mcpgw-gateway")
def cli():
    """mcpgw: serve REST APIs and MCP servers as MCP endpoints, by configuration."""


def _load_plugins() -> None:
    for ep in entry_points(group="mcpgw.commands"):
        ep.load()(cli)


def main(argv=None):
    """Entry point of the ``mcpgw`` console script."""
    _load_plugins()
    return cli.main(args=argv, prog_name="mcpgw")
