"""``python -m gateway_server.api``: the same as ``mcpgw api``."""

from .commands import main

main()
