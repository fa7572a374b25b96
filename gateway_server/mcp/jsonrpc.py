"""JSON-RPC 2.0 framing: message kinds, error codes, and the one error mapping.

IO-free. Transports parse bytes with :func:`parse`, classify with :func:`kind`,
and turn any exception into an error response with :func:`error_from`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

from mcpgw_sdk.client import McpError
from mcpgw_sdk.errors import AuthError, ConfigError, Forbidden, NotFound
from mcpgw_sdk.redact import redact_json, redact_text

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
SERVER_BUSY = -32000  # implementation-defined server error: a limit of this gateway was reached

class JsonRpcError(Exception):
    """Raised by the core to answer a request with a JSON-RPC error ``code``."""

    def __init__(self, code: int, message: str, data: Any = None, *, msg_id: Any = None):
        self.code = code
        self.message = message
        self.data = data
        self.msg_id = msg_id  # the request's id when it was readable: the error answer echoes it
        super().__init__(message)


def error_from(exc: BaseException) -> JsonRpcError:
    """Map any exception to the JSON-RPC error the client sees (the only such mapping)."""
    if isinstance(exc, JsonRpcError):
        return exc
    if isinstance(exc, McpError):  # an upstream server's own JSON-RPC error passes through (URLs redacted)
        return JsonRpcError(exc.code, redact_text(exc.message), redact_json(exc.data))
    if isinstance(exc, (NotFound, ConfigError, LookupError, ValueError, TypeError)):
        return JsonRpcError(INVALID_PARAMS, str(exc))
    if isinstance(exc, (AuthError, Forbidden)):
        return JsonRpcError(INVALID_REQUEST, str(exc))
    return JsonRpcError(INTERNAL_ERROR, f"internal error: {type(exc).__name__}")


def result(msg_id: Any, value: dict[str, Any]) -> dict[str, Any]:
    """A success response."""
    return {"jsonrpc": "2.0", "id": msg_id, "result": value}


def error(msg_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """An error response."""
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": msg_id, "error": err}


def error_response(msg_id: Any, exc: BaseException) -> dict[str, Any]:
    """An error response for ``exc`` (mapped by :func:`error_from`)."""
    mapped = error_from(exc)
    return error(msg_id, mapped.code, mapped.message, mapped.data)


# A lone surrogate can only come from a \uD800-\uDFFF escape (raw surrogate bytes are not UTF-8):
# bodies without such an escape skip the walk over the parsed message.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_SURROGATE = re.compile("[\\ud800-\\udfff]")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


# One decoder for every request: json.loads with hooks would build a new JSONDecoder (and scanner) per call.
_DECODER = json.JSONDecoder(parse_float=_finite, parse_constant=_not_json)


def _loads(body: bytes | str) -> Any:
    """``json.loads(body, parse_float=_finite, parse_constant=_not_json)``, on the shared decoder."""
    if isinstance(body, str):
        if body.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", body, 0)
        return _DECODER.decode(body)
    # A body that opens with "{" and then a non-NUL byte has no BOM and is not UTF-16/32: it is UTF-8
    # (what json.detect_encoding would say, without its checks).
    encoding = "utf-8" if body[:1] == b"{" and body[1:2] != b"\x00" else json.detect_encoding(body)
    return _DECODER.decode(body.decode(encoding, "surrogatepass"))


def parse(body: bytes) -> Any:
    """Decode a request body; raise JsonRpcError(-32700) when it is not strict JSON text.

    Refused: invalid JSON or UTF-8, ``NaN``/``Infinity``, numbers out of a double's range
    (``1e999``), lone UTF-16 surrogates (``"\\ud800"``: not Unicode text), too deep nesting.
    Whatever parses can be answered as strict JSON.
    """
    try:
        message = _loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JsonRpcError(PARSE_ERROR, f"parse error: {exc}") from None
    except RecursionError:
        raise JsonRpcError(PARSE_ERROR, "parse error: the message is nested too deeply") from None
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(message):
        raise JsonRpcError(PARSE_ERROR, "parse error: the message holds a lone UTF-16 surrogate escape "
                           "(\\ud800-\\udfff without its pair), which is not Unicode text")
    return message


def _strict(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_strict(str(k)): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


class Streamed:
    """A JSON string value still being produced (a big backend body read as it arrives).

    A writer that can send it as it comes iterates :meth:`pieces` (``transports.base.respond_json``);
    any other encoding (:func:`dumps`) reads it whole. One pass only; :meth:`close` gives up on it.
    """

    def pieces(self) -> Iterator[str]:
        """The text, a piece at a time; raises when it cannot be produced in full."""
        raise NotImplementedError

    def read(self) -> str:
        """The whole text (kept: a second encoding of the same message gets it again)."""
        whole = self.__dict__.get("_whole")
        if whole is None:
            whole = self.__dict__["_whole"] = "".join(self.pieces())
        return whole

    def close(self) -> None:
        """Release what produces the text (a backend connection) when it is not read to its end."""


def _read_streamed(value: Any) -> Any:
    if isinstance(value, Streamed):  # json's default: read whole, lone surrogates as U+FFFD as _strict writes them
        return _SURROGATE.sub("\ufffd", value.read())
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# One encoder for every answer: json.dumps with these options would build a new JSONEncoder per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_read_streamed)


def dumps(message: Any) -> bytes:
    """Encode a message compactly as strict JSON in UTF-8.

    Values JSON cannot carry (``NaN``, infinities, lone surrogates, say from a backend's
    answer) become ``null`` and U+FFFD rather than invalid output or an exception.
    """
    try:
        return _ENCODER.encode(message).encode()
    except (ValueError, UnicodeEncodeError):
        return json.dumps(_strict(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_read_streamed).encode()


def dumps_text(message: Any) -> str:
    """:func:`dumps` as text, not yet encoded (a large answer is then encoded a slice at a time).

    Lone surrogates are replaced in a text longer than 64 KiB; a shorter one may still hold some
    (:func:`dumps` of the message handles that when its ``encode()`` fails).
    """
    try:
        text = _ENCODER.encode(message)
    except ValueError:
        text = None
    if text is None or (len(text) > 65536 and _SURROGATE.search(text)):
        text = json.dumps(_strict(message), separators=(",", ":"), ensure_ascii=False, allow_nan=False,
                          default=_read_streamed)
    return text


def has_surrogates(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate (which UTF-8 cannot encode)."""
    return _SURROGATE.search(text) is not None


def strict_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, as :func:`dumps` writes them."""
    return _strict(text)


REQUEST, NOTIFICATION, RESPONSE = "request", "notification", "response"


def kind(message: Any) -> str:
    """Classify a message as request, notification or response; raise JsonRpcError(-32600) when invalid."""
    if not isinstance(message, dict):
        raise JsonRpcError(INVALID_REQUEST, "invalid request: a JSON-RPC message must be an object")
    if message.get("jsonrpc") != "2.0":
        raise JsonRpcError(INVALID_REQUEST, "invalid request: 'jsonrpc' must be \"2.0\"")
    method = message.get("method")
    has_id = "id" in message
    if method is None:
        if has_id and ("result" in message or "error" in message):
            return RESPONSE
        raise JsonRpcError(INVALID_REQUEST, "invalid request: 'method' is missing")
    if not isinstance(method, str):
        raise JsonRpcError(INVALID_REQUEST, "invalid request: 'method' must be a string")
    params = message.get("params")
    if not has_id:
        if params is not None and not isinstance(params, dict):
            raise JsonRpcError(INVALID_REQUEST, "invalid request: 'params' must be an object, not "
                               + _JSON_TYPE.get(type(params), type(params).__name__))
        return NOTIFICATION
    msg_id = message["id"]
    if msg_id is None or isinstance(msg_id, bool) or not isinstance(msg_id, (str, int, float)):
        raise JsonRpcError(INVALID_REQUEST, "invalid request: 'id' must be a string or a number, not "
                           + _JSON_TYPE.get(type(msg_id), type(msg_id).__name__))
    if params is not None and not isinstance(params, dict):
        raise JsonRpcError(INVALID_REQUEST, "invalid request: 'params' must be an object, not "
                           + _JSON_TYPE.get(type(params), type(params).__name__), msg_id=msg_id)
    return REQUEST


_JSON_TYPE = {type(None): "null", bool: "a boolean", dict: "an object", list: "an array", str: "a string",
              int: "a number", float: "a number"}
