"""The chat lab's loop: the model streams, asks for tools, the gateway runs them over MCP, repeat.

Messages are OpenAI chat messages. Tool messages also carry what the console
shows (``_name``, ``_arguments``, ``_latency_ms``, ``_is_error``); keys that
start with ``_`` are stripped before the conversation goes back to the model.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from .llm import ChatClient, LlmError
from .mcp_tools import McpCallError, ToolResult

MAX_ROUNDS = 8


class ToolCaller(Protocol):
    """What the loop needs of :class:`~console.mcp_tools.GatewayTools`."""

    def call_tool(self, name: str, arguments: dict[str, Any] | None = None) -> ToolResult:
        """Call one tool."""


def openai_tools(mcp_tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """MCP tool descriptors as OpenAI ``tools`` (function definitions)."""
    out = []
    for tool in mcp_tools:
        schema = tool.get("inputSchema") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": {
            "name": tool["name"], "description": tool.get("description") or tool.get("title") or "",
            "parameters": schema}})
    return out


def for_model(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation without the console's own keys."""
    return [{k: v for k, v in m.items() if not k.startswith("_")} for m in messages]


def conversation(system_prompt: str, history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages to send: the system prompt (when set) and the history."""
    head = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    return head + [m for m in history if m.get("role") != "system"]


def run_turn(llm: ChatClient, tools: ToolCaller | None, messages: list[dict[str, Any]], *,
             tool_specs: list[dict[str, Any]] | None = None,
             on_text: Callable[[str], None] | None = None,
             on_message: Callable[[dict[str, Any]], None] | None = None,
             max_rounds: int = MAX_ROUNDS) -> list[dict[str, Any]]:
    """Answer the last user message, calling tools as the model asks; return the new messages.

    ``on_text`` receives each streamed text delta, ``on_message`` each finished
    message (assistant or tool) so the page can show and store it at once.
    LlmError propagates (nothing after the failure is kept); a failing tool is
    reported to the model as an error result.
    """
    new: list[dict[str, Any]] = []
    for _ in range(max_rounds):
        reply = None
        for event in llm.stream(for_model(messages + new), tools=tool_specs or None):
            if event.type == "text" and on_text:
                on_text(event.text)
            elif event.type == "done":
                reply = event.reply
        if reply is None:
            raise LlmError("the model provider ended the stream without an answer")
        message = reply.to_message()
        new.append(message)
        if on_message:
            on_message(message)
        if not reply.tool_calls:
            return new
        for call in reply.tool_calls:
            tool_message = _call(tools, call.id, call.name, call.arguments)
            new.append(tool_message)
            if on_message:
                on_message(tool_message)
    note = {"role": "assistant", "content": f"(stopped after {max_rounds} rounds of tool calls)"}
    new.append(note)
    if on_message:
        on_message(note)
    return new


def _call(tools: ToolCaller | None, call_id: str, name: str, raw_arguments: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "_name": name,
                               "_arguments": raw_arguments, "_latency_ms": None, "_is_error": True}
    try:
        arguments = json.loads(raw_arguments or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        message["content"] = f"Error: the arguments for {name} are not a JSON object ({exc})"
        return message
    message["_arguments"] = arguments
    if tools is None:
        message["content"] = "Error: no server is selected, so no tool can run"
        return message
    try:
        result = tools.call_tool(name, arguments)
    except McpCallError as exc:
        message["content"] = f"Error: {exc}"
        return message
    message["content"] = result.text or ("(error)" if result.is_error else "(empty result)")
    message["_latency_ms"] = round(result.latency_ms, 1)
    message["_is_error"] = result.is_error
    return message


def title_from(text: str) -> str:
    """A chat title from its first question."""
    text = " ".join(text.split())
    return text[:48] + ("…" if len(text) > 48 else "") or "New chat"
