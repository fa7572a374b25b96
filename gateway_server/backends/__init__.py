"""Backends execute what the MCP core asks of a server: REST tools, upstream MCP servers.

The core sees every backend through :class:`Backend`; backends never call back
up into the core or the transports. :class:`CallContext` carries what a call
may need from the client's request (for templates and auth) without handing the
backend the request object itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class CallContext:
    """What a backend may know of the call it serves.

    ``headers`` have lower-case names. On SSE they come from the connect request.
    ``notify`` sends a JSON-RPC notification to the client (progress, logging) and
    may be ``None``. ``deadline`` is a ``time.monotonic()`` value or ``None``.
    ``request_id`` is the client's JSON-RPC id (upstreams map cancellations by it).
    ``request(method, params, timeout=None)`` sends a server→client request (sampling,
    elicitation, roots) to this client and returns its result, raising ``McpError`` on an
    error answer; it is ``None`` where the transport cannot. ``client_capabilities`` is what
    the client declared in ``initialize`` (forward sampling/elicitation only when declared).
    """

    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    cookies: dict[str, str] = field(default_factory=dict)
    session_id: str | None = None
    protocol_version: str = "2025-11-25"
    request_id: str | None = None
    user: str | None = None
    key_id: int | None = None
    progress_token: Any = None
    notify: Callable[[dict[str, Any]], None] | None = None
    deadline: float | None = None
    request: Callable[..., dict[str, Any]] | None = None
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None  # a modern request's ``io.modelcontextprotocol/logLevel`` (no logs when None)
    # MRTR (2026-07-28 multi-round-trip requests), set by the core from a retry's opened ``requestState``:
    # the client's ``inputResponses``, the upstream's own state and the upstream that state names.
    input_responses: dict[str, Any] | None = None
    request_state: str | None = None
    state_upstream: str | None = None
    # Set by the upstream that answered ``input_required``: the core seals its name into the client's state.
    input_upstream: str | None = None
    # The ``secrets`` of this call's templates (backends.credentials.view makes it; the core scrubs error
    # texts of the values it decrypted).
    secrets: Any = field(default=None, repr=False)
    # The bearer token the caller presented to an ``auth.mode: oauth2`` router (already verified), for
    # backends that exchange it (``tokenExchange``); never a template value, never sent on as it is.
    subject_token: str | None = field(default=None, repr=False)
    # Set by a transport that writes this call's answer as it reads it (Streamable HTTP JSON answers,
    # transports.base.respond_json): a REST tool may then return a long pass-through body as a
    # ``backends.content.StreamedText`` read from the backend while it is sent, never held whole.
    stream_text: bool = False


class InputRefused(Exception):
    """A backend refused a 2026-07-28 retry's ``inputResponses`` or ``requestState`` (a protocol error).

    Unlike other tool failures it is not an ``isError`` result: the core answers it as the JSON-RPC
    error ``code`` (``-32602``), as MRTR wants for malformed input responses.
    """

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


class Backend(Protocol):
    """What the core calls on a server behind a prefix."""

    name: str

    def list_tools(self) -> list[dict[str, Any]]:
        """MCP tool descriptors (``name``, ``description``, ``inputSchema``, …) in a stable order."""

    def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Run a tool; return an MCP ``CallToolResult`` dict. Failures are ``isError`` results, not exceptions."""

    def close(self) -> None:
        """Release connections and processes (called when a snapshot is retired)."""

    # Optional (upstream MCP servers implement them; the core checks with hasattr):
    # capabilities: dict                      -- MCP server capabilities this backend contributes
    # list_prompts() -> list[dict]; get_prompt(name, arguments, ctx) -> dict
    # list_resources() -> list[dict]; list_resource_templates() -> list[dict]
    # read_resource(uri, ctx) -> dict; subscribe(uri, ctx) / unsubscribe(uri, ctx)
    # complete(params, ctx) -> dict; set_logging_level(level, ctx)
    # session_closed(session_id)              -- the downstream session ended
    # add_listener(callback)                  -- callback(event: dict) on upstream list_changed etc.
    # may_notify: bool                        -- see :func:`may_notify` (absent: True)
    # static_capabilities: bool               -- see :func:`static_capabilities` (absent: False)


def may_notify(backend: Any) -> bool:
    """Whether ``backend`` may send notifications (progress, logs) before its answer or be told to cancel.

    A backend says so with a ``may_notify`` class attribute; one that does not say may (upstream MCP
    servers do, and so may any backend the core does not know). REST servers declare ``False``: a
    modern request to them runs inline and is bounded by the tool timeout, not cancelled on close.
    """
    return getattr(backend, "may_notify", True)


def static_capabilities(backend: Any) -> bool:
    """Whether what ``backend`` offers (its capabilities) is fixed once it is built.

    Declared with a ``static_capabilities`` class attribute (REST servers); absent means no (an
    upstream's capabilities arrive when it connects), so the core re-derives them per request.
    """
    return getattr(backend, "static_capabilities", False)


def make_backend(kind: str, **kwargs: Any) -> Backend:
    """Build a backend: ``kind`` is ``rest`` (a REST server of a document) or ``mcp`` (an upstream MCP server).

    Imports lazily so the gateway only loads what its config uses.
    """
    if kind == "rest":
        from .rest import RestServer

        return RestServer(**kwargs)
    if kind == "mcp":
        from .upstream import UpstreamServer

        return UpstreamServer(**kwargs)
    raise ValueError(f"unknown backend kind {kind!r}")
