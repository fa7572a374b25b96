"""The MCP 2026-07-28 ("modern") era: era routing, the request envelope, header checks, HTTP statuses.

IO-free, like the rest of :mod:`gateway_server.mcp`. A modern request carries its protocol
version and client capabilities in ``params._meta`` on every request and repeats the version,
the method and (for ``tools/call``, ``prompts/get``, ``resources/read``) the name in headers.
:func:`classify` checks all of that in the order the spec's conformance suite expects and
either returns the :class:`Envelope` or raises a :class:`~gateway_server.mcp.jsonrpc.JsonRpcError`;
:func:`http_status` is the one place that maps a modern error code to its HTTP status.

>>> decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?=")
'Hello, 世界'
>>> encode_header_value(" padded ")
'=?base64?IHBhZGRlZCA=?='
>>> is_modern({"mcp-protocol-version": "2026-07-28"}, {"method": "initialize"})
True
>>> is_modern({}, {"method": "initialize", "params": {}})
False
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpgw_sdk.mcp_transports import (  # re-exported: one copy of the envelope's names and header encoding
    _SENTINEL,
    NAME_BEARING,
)
from mcpgw_sdk.mcp_transports import META_CLIENT_CAPABILITIES as CLIENT_CAPABILITIES
from mcpgw_sdk.mcp_transports import META_CLIENT_INFO as CLIENT_INFO
from mcpgw_sdk.mcp_transports import META_PROTOCOL_VERSION as PROTOCOL_VERSION
from mcpgw_sdk.mcp_transports import META_SERVER_INFO as SERVER_INFO
from mcpgw_sdk.mcp_transports import RESERVED_META_PREFIX as RESERVED_PREFIX
from mcpgw_sdk.mcp_transports import encode_header_value as encode_header_value  # re-exported

from . import versions
from .jsonrpc import INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, PARSE_ERROR, JsonRpcError

HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022

MODERN_VERSIONS = (versions.MODERN,)
#: Every version a prefix serves, newest first: ``server/discover``'s ``supportedVersions`` and
#: the ``data.supported`` of -32022 are this same list.
SUPPORTED_VERSIONS = (*MODERN_VERSIONS, *reversed(versions.HANDSHAKE_VERSIONS))

LOG_LEVEL = "io.modelcontextprotocol/logLevel"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
#: RFC 5424 severities, lowest first (``notifications/message`` levels).
LOG_LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")

VERSION_HEADER = "mcp-protocol-version"
METHOD_HEADER = "mcp-method"
NAME_HEADER = "mcp-name"
#: Legacy methods the 2026-07-28 revision removed: with the modern envelope they are unknown (404).
REMOVED_METHODS = frozenset({"initialize", "ping", "logging/setLevel", "resources/subscribe",
                             "resources/unsubscribe"})

# The spec's MUSTs (400 for envelope, header, version and capability errors; 404 for unknown
# methods) and the SDK's 400 for malformed messages. Anything else, an internal error included, is
# a JSON-RPC error in a 200 answer, as the official SDK does.
_HTTP_STATUS = {PARSE_ERROR: 400, INVALID_REQUEST: 400, INVALID_PARAMS: 400, HEADER_MISMATCH: 400,
                MISSING_CLIENT_CAPABILITY: 400, UNSUPPORTED_VERSION: 400, METHOD_NOT_FOUND: 404}

def http_status(code: int) -> int:
    """The HTTP status of a modern answer whose JSON-RPC error has ``code`` (200 when unmapped)."""
    return _HTTP_STATUS.get(code, 200)


def status_of(reply: Mapping[str, Any]) -> int:
    """The HTTP status of a modern JSON-RPC response: 200 for a result, else :func:`http_status`."""
    error = reply.get("error")
    if error is None:
        return 200
    return http_status(error.get("code")) if isinstance(error, Mapping) else 200


def decode_header_value(value: str) -> str | None:
    """The text of a header value, decoding ``=?base64?…?=`` strictly; ``None`` when malformed.

    Strict means: valid, canonical base64 of valid UTF-8 (re-encoding gives the same payload).
    """
    if _SENTINEL.match(value) is None:
        return value
    payload = value[len("=?base64?"):-len("?=")]
    try:
        raw = base64.b64decode(payload, validate=True)
        if base64.b64encode(raw).decode() != payload:
            return None
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None


def _meta_of(message: Any) -> Any:
    params = message.get("params") if isinstance(message, dict) else None
    return params.get("_meta") if isinstance(params, dict) else None


def is_modern(headers: Mapping[str, str], body: Any) -> bool:
    """Whether a ``P/mcp`` request belongs to the modern era (decided before its method is looked at).

    ``headers`` have lower-case names. A ``MCP-Protocol-Version`` header naming anything but a
    legacy version means modern. Otherwise a body whose ``params._meta`` carries the modern
    protocol version key is modern. A request of a legacy session (``Mcp-Session-Id``) stays
    legacy unless its body carries that key, whatever its version header says (the session
    answers an unknown version with its own 400). Everything else is legacy.
    """
    if isinstance(body, list):
        enveloped = any(isinstance(meta, dict) and PROTOCOL_VERSION in meta for meta in map(_meta_of, body))
    else:
        meta = _meta_of(body)
        enveloped = isinstance(meta, dict) and PROTOCOL_VERSION in meta
    if headers.get("mcp-session-id") and not enveloped:
        return False
    version = headers.get(VERSION_HEADER)
    return bool(version and not versions.supported(version)) or enveloped


@dataclass(frozen=True)
class Envelope:
    """What a valid modern request declared about itself in ``params._meta``."""

    protocol_version: str
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    client_info: dict[str, Any] = field(default_factory=dict)
    log_level: str | None = None  # ``_meta["io.modelcontextprotocol/logLevel"]``: no log messages without it


def _mismatch(message: str, msg_id: Any) -> JsonRpcError:
    return JsonRpcError(HEADER_MISMATCH, f"Header mismatch: {message}", msg_id=msg_id)


_SENTINEL_START = "=?base64?"


def classify(message: dict[str, Any], headers: Mapping[str, str]) -> Envelope:
    """Check a modern request's envelope and headers; return its :class:`Envelope`.

    ``message`` is a JSON-RPC request (already checked by :func:`jsonrpc.kind`); ``headers``
    have lower-case names. The first failing rung wins, in this order:
    ``_meta`` fields (-32602), ``MCP-Protocol-Version``/``Mcp-Method``/``Mcp-Name`` (-32020),
    the version itself (-32022 with ``data: {supported, requested}``).
    """
    # Fast path: a valid request (every check passes, none needs decoding) in one pass; anything
    # else goes through the ordered checks below, which pick the error to report.
    params = message.get("params")
    meta = params.get("_meta") if type(params) is dict else None
    if type(meta) is dict:
        version = meta.get(PROTOCOL_VERSION)
        capabilities = meta.get(CLIENT_CAPABILITIES)
        method = message["method"]
        level = meta.get(LOG_LEVEL)
        if type(version) is str and version in MODERN_VERSIONS and type(capabilities) is dict \
                and headers.get(VERSION_HEADER) == version and headers.get(METHOD_HEADER) == method \
                and (level is None or (type(level) is str and level in LOG_LEVELS)):
            field_name = NAME_BEARING.get(method)
            wanted = params.get(field_name) if field_name is not None else None
            if wanted is None or (type(wanted) is str and headers.get(NAME_HEADER) == wanted
                                  and not wanted.startswith(_SENTINEL_START)):
                info = meta.get(CLIENT_INFO)
                return Envelope(version, capabilities, info if isinstance(info, dict) else {}, level)
    return _classify_slowly(message, headers)


def _classify_slowly(message: dict[str, Any], headers: Mapping[str, str]) -> Envelope:
    msg_id = message.get("id")
    meta = _meta_of(message)
    if not isinstance(meta, dict):
        raise JsonRpcError(INVALID_PARAMS, f"params._meta must be an object carrying the required "
                           f"{PROTOCOL_VERSION!r} and {CLIENT_CAPABILITIES!r}", msg_id=msg_id)
    missing = [key for key in (PROTOCOL_VERSION, CLIENT_CAPABILITIES) if key not in meta]
    if missing:
        raise JsonRpcError(INVALID_PARAMS, "params._meta is missing the required envelope key(s): "
                           + ", ".join(missing), msg_id=msg_id)
    version = meta[PROTOCOL_VERSION]
    header = headers.get(VERSION_HEADER)
    if header is None:
        raise _mismatch("the MCP-Protocol-Version header is required", msg_id)
    if header != version:
        raise _mismatch(f"MCP-Protocol-Version header value {header!r} does not match body value {version!r}",
                        msg_id)
    method = message["method"]
    if headers.get(METHOD_HEADER) != method:
        sent = headers.get(METHOD_HEADER)
        raise _mismatch("the Mcp-Method header is required" if sent is None
                        else f"Mcp-Method header value {sent!r} does not match body value {method!r}", msg_id)
    field_name = NAME_BEARING.get(method)
    if field_name is not None:
        wanted = (message.get("params") or {}).get(field_name)
        if wanted is not None:
            sent = headers.get(NAME_HEADER)
            if sent is None:
                raise _mismatch(f"the Mcp-Name header is required for {method}", msg_id)
            decoded = decode_header_value(sent)
            if decoded is None:
                raise _mismatch(f"Mcp-Name header value {sent!r} is not valid =?base64?…?= encoding", msg_id)
            if decoded != wanted:
                raise _mismatch(f"Mcp-Name header value {decoded!r} does not match body value {wanted!r}",
                                msg_id)
    if not isinstance(version, str):
        raise JsonRpcError(INVALID_PARAMS, f"params._meta[{PROTOCOL_VERSION!r}] must be a string", msg_id=msg_id)
    if version not in MODERN_VERSIONS:
        raise JsonRpcError(UNSUPPORTED_VERSION, f"Unsupported protocol version {version!r}",
                           {"supported": list(SUPPORTED_VERSIONS), "requested": version}, msg_id=msg_id)
    capabilities = meta[CLIENT_CAPABILITIES]
    if not isinstance(capabilities, dict):
        raise JsonRpcError(INVALID_PARAMS, f"params._meta[{CLIENT_CAPABILITIES!r}] must be an object",
                           msg_id=msg_id)
    level = meta.get(LOG_LEVEL)
    if level is not None and level not in LOG_LEVELS:
        raise JsonRpcError(INVALID_PARAMS, f"params._meta[{LOG_LEVEL!r}] must be one of {', '.join(LOG_LEVELS)}",
                           msg_id=msg_id)
    info = meta.get(CLIENT_INFO)
    return Envelope(version, capabilities, info if isinstance(info, dict) else {}, level)


def relates(envelope: Envelope, note: Mapping[str, Any]) -> bool:
    """Whether a backend's notification may go on the request's own stream.

    Progress (the backend already carries the client's own token) always; ``notifications/message``
    only when the request set a log level and the message is at or above it; nothing else (the
    stream carries only what relates to its request).

    >>> relates(Envelope("2026-07-28"), {"method": "notifications/message", "params": {"level": "error"}})
    False
    >>> relates(Envelope("2026-07-28", log_level="info"), {"method": "notifications/message",
    ...                                                     "params": {"level": "debug"}})
    False
    """
    method = note.get("method")
    if method == "notifications/progress":
        return True
    if method != "notifications/message" or envelope.log_level is None:
        return False
    level = (note.get("params") or {}).get("level")
    rank = LOG_LEVELS.index(level) if level in LOG_LEVELS else len(LOG_LEVELS) - 1
    return rank >= LOG_LEVELS.index(envelope.log_level)


def without_envelope(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the reserved ``io.modelcontextprotocol/*`` ``_meta`` keys (never passed to backends).

    >>> without_envelope({"name": "t", "_meta": {PROTOCOL_VERSION: "2026-07-28", "progressToken": 1}})
    {'name': 't', '_meta': {'progressToken': 1}}
    """
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        return params
    rest = dict(params)
    del rest["_meta"]
    kept = {k: v for k, v in meta.items() if not (k.startswith(RESERVED_PREFIX) if type(k) is str
                                                  else str(k).startswith(RESERVED_PREFIX))}
    if kept:
        rest["_meta"] = kept
    return rest


def with_server_meta(result: dict[str, Any], server_info: dict[str, Any]) -> dict[str, Any]:
    """``result`` as a modern complete result: ``resultType`` and serverInfo in ``_meta``.

    Reserved ``io.modelcontextprotocol/*`` keys a backend put in ``_meta`` are dropped: the
    gateway sets its own at each hop.
    """
    meta = result.get("_meta")
    if meta and isinstance(meta, dict):
        own = {k: v for k, v in meta.items() if not str(k).startswith(RESERVED_PREFIX)}
        own[SERVER_INFO] = server_info
    else:
        own = {SERVER_INFO: server_info}
    out = dict(result)
    out["resultType"] = result.get("resultType") or "complete"
    out["_meta"] = own
    return out
