"""A small OpenAI-compatible chat-completions client with streaming, streamed tool calls included.

It speaks the wire format every OpenAI-compatible provider serves (OpenAI, vLLM,
Ollama, LiteLLM, llama.cpp): ``POST {base_url}/chat/completions`` with
``stream: true`` answers Server-Sent Events, one ``data: {chunk}`` per delta,
ended by ``data: [DONE]``. Tool calls arrive as ``delta.tool_calls`` fragments
keyed by ``index`` whose ``function.arguments`` strings are concatenated.

>>> client = ChatClient(base_url="http://127.0.0.1:8000/v1", model="m")  # doctest: +SKIP
>>> for event in client.stream([{"role": "user", "content": "hi"}]):  # doctest: +SKIP
...     print(event.type, event.text)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import requests


class LlmError(RuntimeError):
    """Raised when the model provider cannot be reached or answers with an error; the message says which."""

    def __init__(self, message: str, *, status: int | None = None):
        self.status = status
        super().__init__(message)


@dataclass
class ToolCall:
    """A tool call the model asked for: ``arguments`` is the JSON text the model produced."""

    id: str
    name: str
    arguments: str = ""

    def parsed_arguments(self) -> dict[str, Any]:
        """The arguments as a dict; LlmError when the model produced something that is not a JSON object."""
        text = self.arguments.strip() or "{}"
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise LlmError(f"the model's arguments for tool {self.name!r} are not JSON: {exc}") from None
        if not isinstance(value, dict):
            raise LlmError(f"the model's arguments for tool {self.name!r} are not a JSON object")
        return value

    def to_message(self) -> dict[str, Any]:
        """The OpenAI ``tool_calls`` entry of an assistant message."""
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


@dataclass
class Reply:
    """One assembled answer: its text, the tool calls it asks for, and why it finished."""

    content: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: str | None = None

    def to_message(self) -> dict[str, Any]:
        """The assistant message to append to the conversation."""
        message: dict[str, Any] = {"role": "assistant", "content": self.content or None}
        if self.tool_calls:
            message["tool_calls"] = [call.to_message() for call in self.tool_calls]
        return message


@dataclass
class Event:
    """A streaming event: ``text`` (a content delta) or ``done`` (with the assembled ``reply``)."""

    type: str
    text: str = ""
    reply: Reply | None = None


def defaults() -> dict[str, str]:
    """Provider settings from ``OPENAI_BASE_URL``, ``OPENAI_API_KEY`` and ``OPENAI_MODEL``."""
    return {
        "base_url": os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        "api_key": os.environ.get("OPENAI_API_KEY", ""),
        "model": os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
    }


class ChatClient:
    """An OpenAI-compatible chat-completions client (``base_url`` ends before ``/chat/completions``)."""

    def __init__(self, *, base_url: str, model: str, api_key: str = "", timeout: float = 120.0,
                 session: requests.Session | None = None):
        if not base_url:
            raise LlmError("base URL: required (e.g. https://api.openai.com/v1)")
        if not model:
            raise LlmError("model: required")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.session = session or requests.Session()

    def _post(self, body: dict[str, Any]) -> requests.Response:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = f"{self.base_url}/chat/completions"
        try:
            resp = self.session.post(url, json=body, headers=headers, stream=True, timeout=self.timeout)
        except requests.Timeout:
            raise LlmError(f"the model provider at {url} did not answer within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise LlmError(f"cannot reach the model provider at {url}: {exc.__class__.__name__}") from None
        if resp.status_code >= 400:
            raise LlmError(f"the model provider answered HTTP {resp.status_code}: {_error_text(resp)}",
                           status=resp.status_code)
        return resp

    def stream(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
               **options: Any) -> Iterator[Event]:
        """Send the conversation; yield ``text`` events as they arrive, then one ``done`` event."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True, **options}
        if tools:
            body["tools"] = tools
        resp = self._post(body)
        reply = Reply()
        calls: dict[int, ToolCall] = {}
        with resp:
            if "text/event-stream" not in resp.headers.get("Content-Type", ""):
                # Some providers ignore ``stream`` and answer one JSON completion.
                reply = _reply_from_completion(_json(resp))
                if reply.content:
                    yield Event("text", text=reply.content)
                yield Event("done", reply=reply)
                return
            for chunk in _sse_data(resp):
                if chunk == "[DONE]":
                    break
                try:
                    data = json.loads(chunk)
                except ValueError:
                    raise LlmError(f"the model provider sent a chunk that is not JSON: {chunk[:200]!r}") from None
                if "error" in data:
                    raise LlmError(f"the model provider reported an error: {_message(data['error'])}")
                for choice in data.get("choices") or []:
                    delta = choice.get("delta") or {}
                    text = delta.get("content")
                    if text:
                        reply.content += text
                        yield Event("text", text=text)
                    for part in delta.get("tool_calls") or []:
                        index = part.get("index", len(calls))
                        call = calls.setdefault(index, ToolCall(id="", name=""))
                        call.id = part.get("id") or call.id
                        function = part.get("function") or {}
                        call.name += function.get("name") or ""
                        call.arguments += function.get("arguments") or ""
                    if choice.get("finish_reason"):
                        reply.finish_reason = choice["finish_reason"]
        reply.tool_calls = [calls[i] for i in sorted(calls)]
        for n, call in enumerate(reply.tool_calls):
            call.id = call.id or f"call_{n}"
        yield Event("done", reply=reply)

    def complete(self, messages: list[dict[str, Any]], *, tools: list[dict[str, Any]] | None = None,
                 **options: Any) -> Reply:
        """Send the conversation and return the assembled reply (streamed underneath)."""
        reply = Reply()
        for event in self.stream(messages, tools=tools, **options):
            if event.type == "done" and event.reply is not None:
                reply = event.reply
        return reply


def _sse_data(resp: requests.Response) -> Iterator[str]:
    """The ``data`` payloads of an SSE stream (multi-line data joined with newlines)."""
    lines: list[str] = []
    for raw in resp.iter_lines():
        line = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not line:
            if lines:
                yield "\n".join(lines)
                lines = []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        if name == "data":
            lines.append(value[1:] if value.startswith(" ") else value)
    if lines:
        yield "\n".join(lines)


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        return resp.json()
    except ValueError:
        raise LlmError(f"the model provider answered something that is not JSON: {resp.text[:200]!r}") from None


def _reply_from_completion(data: dict[str, Any]) -> Reply:
    choice = (data.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    calls = [ToolCall(id=c.get("id") or f"call_{n}", name=c["function"]["name"],
                      arguments=c["function"].get("arguments") or "")
             for n, c in enumerate(message.get("tool_calls") or [])]
    return Reply(content=message.get("content") or "", tool_calls=calls, finish_reason=choice.get("finish_reason"))


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


def _error_text(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason
    if isinstance(data, dict) and "error" in data:
        return _message(data["error"])
    return json.dumps(data)[:300]
