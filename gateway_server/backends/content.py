"""Turning backend responses into MCP ``CallToolResult`` dicts.

``image/*`` becomes image content, ``audio/*`` audio content, anything else
text; JSON bodies fill ``structuredContent`` (with a text copy) when the tool
declares an ``outputSchema``. The core down-converts content a client's
protocol version lacks.
"""

from __future__ import annotations

import base64
import codecs
from collections.abc import Iterator
from typing import Any

from mcpgw_sdk.redact import redact_url

from ..mcp.jsonrpc import Streamed
from .http import READ_SIZE, Response

EXCERPT = 500


class StreamedText(Streamed):
    """The text of a response whose body is longer than its first window (``Response.more``).

    Its pieces are decoded as the body arrives (an incremental decoder of the response's
    charset, undecodable bytes replaced as :attr:`Response.text` does), each read checked against
    the size limit and the call's time by the :class:`~gateway_server.backends.http.BodyStream`.
    The whole text is never held by the gateway when the transport writes it out as it comes.
    """

    def __init__(self, resp: Response):
        if resp.more is None:
            raise ValueError("the response body is complete: use resp.text")
        self._head, self._more = resp.body, resp.more
        try:
            self._decoder = codecs.getincrementaldecoder(resp.charset)(errors="replace")
        except LookupError:
            self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def pieces(self) -> Iterator[str]:
        """The text as it arrives; raises the backend's HttpError (the connection closed) when the body fails."""
        head, self._head = self._head, b""
        decode, more = self._decoder.decode, self._more
        for start in range(0, len(head), READ_SIZE):  # the window a read's worth at a time, as the rest comes
            text = decode(head[start:start + READ_SIZE])
            if text:
                yield text
        del head
        while chunk := more.read():
            text = decode(chunk)
            if text:
                yield text
        text = decode(b"", True)
        if text:
            yield text

    def close(self) -> None:
        """Drop the backend connection unless the body was read to its end."""
        self._more.close()

    def __repr__(self) -> str:
        return f"<StreamedText of {self._more.method} {display_url(self._more.url)}>"


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
    excerpt = resp.finish().text[:EXCERPT]
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
    """The result of a successful call: ``text`` (a rendered responseBody) or the body, as MCP content.

    A body still arriving (``resp.more``) that becomes the text as it is becomes a :class:`StreamedText`;
    any other use of it reads it whole first.
    """
    kind = resp.content_type
    if resp.more is not None:
        if text is None and output_schema is None and not kind.startswith(("image/", "audio/")):
            return text_result(StreamedText(resp))  # type: ignore[arg-type]  # a str once written
        resp.finish()
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
