"""mcpgw_sdk: model, store and script the configs an mcpgw gateway serves.

>>> import mcpgw_sdk
>>> gw = mcpgw_sdk.connect("sqlite:///mcpgw.db")  # doctest: +SKIP
"""

from .builders import DocumentBuilder
from .client import McpClient
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
    StorageError,
    TemplateError,
)
from .local import LocalGateway
from .store import Store, open_store
from .workspace import NewKey, Workspace, connect

__version__ = "0.1.0"

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
    "StorageError",
    "Store",
    "TemplateError",
    "Workspace",
    "connect",
    "open_store",
    "__version__",
]
