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
    McpgwError,
    MigrationRequired,
    NotFound,
    ReadOnlyError,
    StorageError,
    TemplateError,
)
from .store import Store, open_store
from .workspace import NewKey, Workspace, connect

__version__ = "0.1.0"

__all__ = [
    "AuthError",
    "ConfigError",
    "ConflictError",
    "DocumentBuilder",
    "Forbidden",
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
