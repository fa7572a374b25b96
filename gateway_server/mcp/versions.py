"""MCP protocol versions: negotiation and what each version may receive.

The gateway speaks every handshake-era version. Content and descriptor fields a
negotiated version lacks are converted or dropped here, in one place, so
backends can always return the newest shapes.
"""

from __future__ import annotations

import json
from typing import Any

HANDSHAKE_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST = HANDSHAKE_VERSIONS[-1]
MODERN = "2026-07-28"
_ORDER = {v: i for i, v in enumerate(HANDSHAKE_VERSIONS)}
_RANK = {**_ORDER, MODERN: len(_ORDER)}  # the modern era has every field the newest handshake version has


def negotiate(requested: Any) -> str:
    """The version to answer ``initialize`` with: the requested one when supported, else the latest."""
    return requested if requested in _ORDER else LATEST


def supported(version: str) -> bool:
    """Whether ``version`` is a handshake-era version the gateway serves."""
    return version in _ORDER


def at_least(version: str, minimum: str) -> bool:
    """Whether ``version`` is ``minimum`` or newer (unknown versions count as the oldest; 2026-07-28 the newest)."""
    return _RANK.get(version, 0) >= _RANK[minimum]


def allows_batch(version: str) -> bool:
    """JSON-RPC batches exist only in 2025-03-26."""
    return version == "2025-03-26"


def _text_of_audio(item: dict[str, Any]) -> dict[str, Any]:
    size = len(item.get("data", "")) * 3 // 4
    return {"type": "text", "text": f"[audio {item.get('mimeType', 'unknown')}, about {size} bytes, "
                                    f"not shown: this client's protocol version lacks audio content]"}


def _text_of_link(item: dict[str, Any]) -> dict[str, Any]:
    label = item.get("title") or item.get("name") or item.get("uri", "")
    return {"type": "text", "text": f"{label}: {item.get('uri', '')}"}


def adapt_prompt(result: dict[str, Any], version: str) -> dict[str, Any]:
    """Convert a ``GetPromptResult``'s message contents to what ``version`` understands."""
    if at_least(version, "2025-06-18"):
        return result
    audio_ok = at_least(version, "2025-03-26")
    messages = []
    for message in result.get("messages") or []:
        item = message.get("content") or {}
        if item.get("type") == "audio" and not audio_ok:
            message = {**message, "content": _text_of_audio(item)}
        elif item.get("type") == "resource_link":
            message = {**message, "content": _text_of_link(item)}
        messages.append(message)
    return {**result, "messages": messages}


def adapt_result(result: dict[str, Any], version: str) -> dict[str, Any]:
    """Convert a ``CallToolResult`` to what ``version`` understands (a new dict only when needed)."""
    if at_least(version, "2025-06-18"):
        return result
    content = result.get("content") or []
    audio_ok = at_least(version, "2025-03-26")
    changed = "structuredContent" in result
    out = []
    for item in content:
        kind = item.get("type")
        if kind == "audio" and not audio_ok:
            item, changed = _text_of_audio(item), True
        elif kind == "resource_link":
            item, changed = _text_of_link(item), True
        out.append(item)
    if not changed:
        return result
    adapted = {k: v for k, v in result.items() if k != "structuredContent"}
    if "structuredContent" in result and not any(i.get("type") == "text" for i in out):
        out.append({"type": "text", "text": json.dumps(result["structuredContent"])})
    adapted["content"] = out
    return adapted


# Tool descriptor fields and the version that introduced them.
_TOOL_FIELDS = {"annotations": "2025-03-26", "title": "2025-06-18", "outputSchema": "2025-06-18",
                "_meta": "2025-06-18", "icons": "2025-11-25", "execution": "2025-11-25"}


def adapt_tool(tool: dict[str, Any], version: str) -> dict[str, Any]:
    """A tool descriptor without the fields ``version`` lacks."""
    drop = [k for k, since in _TOOL_FIELDS.items() if k in tool and not at_least(version, since)]
    if not drop:
        return tool
    return {k: v for k, v in tool.items() if k not in drop}
