"""The exceptions mcpgw raises: a small hierarchy under :class:`McpgwError`.

Each class is also a builtin where one fits, so callers may catch ``LookupError``
or ``ValueError`` without importing mcpgw. Driver errors are wrapped at the
storage boundary; the gateway and the management API map these classes to
JSON-RPC codes and HTTP statuses in one place each.
"""

from __future__ import annotations

from typing import Any


class McpgwError(Exception):
    """Base class of every error mcpgw raises on purpose."""


class ConfigError(McpgwError, ValueError):
    """Raised when a config document, setting or template is invalid.

    ``errors`` lists one line per problem, each naming the document, the field
    path and the reason, e.g.
    ``default/users: tools[2].args[0].position: 'bdy' is not one of header, query, ...``.
    """

    def __init__(self, message: str, errors: list[str] | None = None):
        self.errors = list(errors) if errors else [message]
        super().__init__(message if not errors else "\n".join(self.errors))


class TemplateError(ConfigError):
    """Raised when a template does not parse, does not translate, or fails to render."""


class NotFound(McpgwError, LookupError):
    """Raised when a tenant, user, document, version, key or session does not exist."""


class ConflictError(McpgwError):
    """Raised when a write would overwrite a change the writer has not seen.

    ``base_version`` is the version the writer started from, ``current_version``
    the version now stored (``None`` when the object was created meanwhile).
    """

    def __init__(self, message: str, *, base_version=None, current_version=None):
        self.base_version = base_version
        self.current_version = current_version
        super().__init__(message)


class AuthError(McpgwError, PermissionError):
    """Raised when credentials are missing, wrong, expired or revoked."""


class Forbidden(McpgwError, PermissionError):
    """Raised when an authenticated user may not do what they asked."""


class ReadOnlyError(McpgwError, PermissionError):
    """Raised when writing to a read-only store (``yaml:///dir``)."""


class SecretError(McpgwError, ValueError):
    """Raised when a per-user secret cannot be set (no ``secrets_key``) or opened (another key, altered data)."""


class StorageError(McpgwError, ConnectionError):
    """Raised when the database cannot be reached or fails; the message masks passwords."""


class MigrationRequired(McpgwError, RuntimeError):
    """Raised when the database schema is behind; the message says which command to run."""


class McpError(McpgwError):
    """Raised when the server answers a request with a JSON-RPC error; carries ``code``, ``message`` and ``data``."""

    def __init__(self, code: int, message: str, data: Any = None):
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"{message} (code {code})")


class McpTimeout(McpError, TimeoutError):
    """Raised when a request gets no answer within its timeout (the request is cancelled upstream)."""

    def __init__(self, message: str):
        super().__init__(-32001, message)


class McpConnectionError(McpError, ConnectionError):
    """Raised when the connection fails or closes: process exited, HTTP error, session expired."""

    def __init__(self, message: str, data: Any = None):
        super().__init__(-32000, message, data)


class McpSessionExpired(McpConnectionError):
    """Raised when a Streamable HTTP server no longer knows the session (HTTP 404): reconnect and retry."""
