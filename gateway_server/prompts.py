"""Prompts defined in config documents (``prompts[]``): listing and rendering.

``{argName}`` in a prompt's texts is replaced by the argument's value.
"""

from __future__ import annotations

import re
from typing import Any

from .mcp.jsonrpc import INVALID_PARAMS, JsonRpcError

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def describe(prompt: dict[str, Any]) -> dict[str, Any]:
    """The MCP ``Prompt`` descriptor of a document prompt."""
    out: dict[str, Any] = {"name": prompt["name"]}
    if prompt.get("description"):
        out["description"] = prompt["description"]
    args = [{k: a[k] for k in ("name", "description", "required") if k in a}
            for a in prompt.get("arguments") or [] if isinstance(a, dict) and a.get("name")]
    if args:
        out["arguments"] = args
    return out


def render(prompt: dict[str, Any], arguments: dict[str, Any] | None) -> dict[str, Any]:
    """A ``GetPromptResult``: the prompt's messages with ``{arg}`` replaced.

    Raises JsonRpcError(-32602) naming a missing required argument.
    """
    arguments = arguments or {}
    for arg in prompt.get("arguments") or []:
        if arg.get("required") and arg.get("name") not in arguments:
            raise JsonRpcError(INVALID_PARAMS, f"prompt {prompt['name']}: missing required argument {arg['name']!r}")

    def fill(text: str) -> str:
        return _PLACEHOLDER.sub(lambda m: str(arguments[m.group(1)]) if m.group(1) in arguments else m.group(0), text)

    messages = []
    for item in prompt.get("promptResponse") or []:
        content = dict(item.get("content") or {"type": "text", "text": ""})
        if content.get("type", "text") == "text":
            content = {"type": "text", "text": fill(str(content.get("text", "")))}
        messages.append({"role": item.get("role", "user"), "content": content})
    result: dict[str, Any] = {"messages": messages}
    if prompt.get("description"):
        result["description"] = prompt["description"]
    return result
