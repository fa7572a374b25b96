"""mcpgw_sdk: model, store and script the configs an mcpgw gateway serves.

>>> import mcpgw_sdk
>>> gw = mcpgw_sdk.connect("sqlite:///mcpgw.db")  # doctest: +SKIP
"""

from .builders import DocumentBuilder
from .errors import (
    AuthError,
    ConfigError,
    ConflictError,
    Forbidden,
    McpConnectionError,
    McpError,
    McpgwError,
    McpTimeout,
    MigrationRequired,
    NotFound,
    ReadOnlyError,
    SecretError,
    StorageError,
    TemplateError,
)
from .store import Store
from .workspace import NewKey, Workspace, connect

__version__ = "0.1.0"

# The MCP client pulls in urllib3 and ssl, open_store peewee and the database drivers; entry
# points that patch with gevent import mcpgw_sdk first, so these load on first use instead.
_LAZY = {"McpClient": ".client", "LocalGateway": ".local", "open_store": ".opening"}


def __getattr__(name: str):
    if name in _LAZY:
        from importlib import import_module

        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "DocumentBuilder",
    "Forbidden",
    "LocalGateway",
    "McpClient",
    "McpConnectionError",
    "McpError",
    "McpTimeout",
    "McpgwError",
    "MigrationRequired",
    "NewKey",
    "NotFound",
    "ReadOnlyError",
    "SecretError",
    "StorageError",
    "Store",
    "TemplateError",
    "Workspace",
    "connect",
    "open_store",
    "__version__",
]
