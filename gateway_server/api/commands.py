"""Commands this part adds to ``mcpgw`` (through the ``mcpgw.commands`` entry point group)."""


def register(cli):
    """Add this part's commands to the ``mcpgw`` click group."""
