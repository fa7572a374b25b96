"""Turning backend responses into MCP ``CallToolResult`` dicts.

``image/*`` becomes image content, ``audio/*`` audio content, anything else
text; JSON bodies fill ``structuredContent`` (with a text copy) when the tool
declares an ``outputSchema``. The core down-converts content a client's
protocol version lacks.
"""

from __future__ import annotations

import base64
from typing import Any

from mcpgw_sdk.redact import redact_url

from .http import Response

EXCERPT = 500


def text_result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    """A result with one text item."""
    return {"content": [{"type": "text", "text": text}], "isError": is_error}


def error_result(text: str) -> dict[str, Any]:
    """A failed call: ``isError`` true and a text that says what went wrong."""
    return text_result(text, is_error=True)


def display_url(url: str) -> str:
    """The URL without user info and query string, for error messages (those may carry secrets)."""
    return redact_url(url).split("?", 1)[0]


def http_error_result(resp: Response) -> dict[str, Any]:
    """``HTTP 404 Not Found from GET http://…: <first 500 characters of the body>``."""
    excerpt = resp.text[:EXCERPT]
    message = f"HTTP {resp.status} {resp.reason} from {resp.method} {display_url(resp.url)}"
    return error_result(f"{message}: {excerpt}" if excerpt else message)


def parse_json(resp: Response) -> Any:
    """The body as JSON when the response says it is JSON (or looks like it); ``None`` otherwise."""
    kind = resp.content_type
    if kind == "application/json" or kind.endswith("+json") or (not kind and resp.body[:1] in (b"{", b"[")):
        try:
            return resp.json()
        except ValueError:
            return None
    return None


def response_result(resp: Response, *, text: str | None = None,
                    output_schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """The result of a successful call: ``text`` (a rendered responseBody) or the body, as MCP content."""
    kind = resp.content_type
    result: dict[str, Any]
    if text is None and kind.startswith(("image/", "audio/")):
        item_type = "image" if kind.startswith("image/") else "audio"
        data = base64.b64encode(resp.body).decode("ascii")
        return {"content": [{"type": item_type, "data": data, "mimeType": kind}], "isError": False}
    if output_schema is not None:
        data = parse_json(resp)
        if data is not None:
            copy = text if text is not None else resp.text  # the body is already the JSON text
            result = text_result(copy)
            result["structuredContent"] = data
            return result
    return text_result(text if text is not None else resp.text)
