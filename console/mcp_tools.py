"""Call the gateway's tools over MCP (Streamable HTTP), the way any MCP client does.

A thin layer over the SDK's :class:`~mcpgw_sdk.client.McpClient` that times each
call and turns every transport or protocol failure into one readable
:class:`McpCallError`.

>>> with GatewayTools("http://127.0.0.1:5235/demo/mcp") as tools:  # doctest: +SKIP
...     print([t["name"] for t in tools.list_tools()])
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mcpgw_sdk.client import McpClient, McpConnectionError, McpError, McpTimeout


class McpCallError(RuntimeError):
    """Raised when the gateway cannot be reached or answers a JSON-RPC error; the message says which."""


@dataclass
class ToolResult:
    """A ``tools/call`` result with the round-trip latency in milliseconds."""

    result: dict[str, Any]
    latency_ms: float

    @property
    def is_error(self) -> bool:
        """True when the tool reported a failure (``isError``)."""
        return bool(self.result.get("isError"))

    @property
    def text(self) -> str:
        """The result's content as text (structured content when there is no text)."""
        return result_text(self.result)


def result_text(result: dict[str, Any]) -> str:
    """Render an MCP ``CallToolResult`` as text for people and for the model."""
    parts = []
    for item in result.get("content") or []:
        kind = item.get("type")
        if kind == "text":
            parts.append(item.get("text", ""))
        elif kind in ("image", "audio"):
            parts.append(f"[{kind} {item.get('mimeType', '')}]")
        elif kind == "resource_link":
            parts.append(f"[resource {item.get('uri', '')}]")
        elif kind == "resource":
            resource = item.get("resource") or {}
            parts.append(resource.get("text") or f"[resource {resource.get('uri', '')}]")
    if not parts and "structuredContent" in result:
        parts.append(json.dumps(result["structuredContent"]))
    return "\n".join(parts)


def endpoint(gateway_url: str, prefix: str) -> str:
    """The Streamable HTTP endpoint of a served prefix, e.g. ``http://127.0.0.1:5235/demo/mcp``."""
    return gateway_url.rstrip("/") + "/" + prefix.strip("/") + "/mcp"


class GatewayTools:
    """An MCP session with one gateway endpoint (the SDK's :class:`~mcpgw_sdk.client.McpClient`).

    ``connect()`` is implicit on first use; every failure to reach or talk to the
    gateway becomes :class:`McpCallError` with a readable message.
    """

    def __init__(self, url: str, *, api_key: str = "", timeout: float = 60.0):
        self.url = url
        self.timeout = timeout
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client: McpClient | None = None

    def __enter__(self) -> GatewayTools:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server_info(self) -> dict[str, Any]:
        """The gateway's ``serverInfo`` (empty before connecting)."""
        return self._client.server_info if self._client else {}

    def connect(self) -> GatewayTools:
        """Initialize the session."""
        if self._client is None or self._client.closed:
            client = McpClient(self.url, transport="streamable-http", headers=self._headers, timeout=self.timeout,
                               client_info={"name": "mcpgw-console", "version": "1"}, name="console")
            with self._errors("initialize"):
                client.connect()
            self._client = client
        return self

    def list_tools(self) -> list[dict[str, Any]]:
        """Every tool the endpoint serves."""
        client = self.connect()._client
        with self._errors("tools/list"):
            return client.list_tools()

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        """Call a tool; tool failures come back as results with ``isError``, not exceptions."""
        client = self.connect()._client
        start = time.perf_counter()
        with self._errors("tools/call"):
            result = client.call_tool(name, arguments or {})
        return ToolResult(result=result, latency_ms=(time.perf_counter() - start) * 1000.0)

    def close(self) -> None:
        """End the session and release connections."""
        if self._client is not None:
            self._client.close()
            self._client = None

    @contextmanager
    def _errors(self, method: str) -> Iterator[None]:
        try:
            yield
        except McpTimeout:
            raise McpCallError(f"{method}: the gateway at {self.url} did not answer within {self.timeout:g} s") \
                from None
        except McpConnectionError as exc:
            raise McpCallError(f"{method}: cannot reach the gateway at {self.url} ({exc}); "
                               "is MCPGW_GATEWAY_URL right?") from None
        except McpError as exc:
            raise McpCallError(f"{method}: {exc}") from None
