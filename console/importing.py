"""The Import page's logic: recognise our YAML, Unla's YAML or an OpenAPI spec, convert, preview tools."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from mcpgw_sdk.errors import ConfigError

KINDS = ("mcpgw", "unla", "openapi")


@dataclass
class Preview:
    """A converted document and one row per tool it would serve."""

    content: dict[str, Any]
    kind: str
    tools: list[dict[str, Any]] = field(default_factory=list)


def fetch(url: str, *, trusted: bool = False, timeout: float = 15.0) -> str:
    """Download a spec or document; ConfigError saying why when it cannot be read.

    ``trusted`` (an admin typed the URL) lets it reach the loopback or private host it names;
    anyone else's URL must lead to public addresses, as an argument-chosen URL would.
    """
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"url: {url!r} is not an http(s) URL")
    # Through the gateway's outbound guard: an admin's URL is trusted as if written in a document (never
    # metadata or link-local addresses); a member's must be public, or a member could read internal services.
    from gateway_server.backends.guard import Refused
    from gateway_server.backends.guard import fetch as guarded_fetch

    try:
        resp = guarded_fetch(url, timeout=timeout, max_bytes=4 * 1024 * 1024,
                             literal_hosts=None if trusted else ())
    except Refused as exc:
        raise ConfigError(f"url: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"url: cannot fetch {url}: {exc.__class__.__name__}") from None
    if resp.status >= 400:
        raise ConfigError(f"url: {url} answered HTTP {resp.status}")
    return resp.text


def load(text: str, *, source: str = "upload") -> Any:
    """Parse YAML or JSON text holding one document or spec; ConfigError with the line and column otherwise."""
    from mcpgw_sdk.documents import parse_text

    docs = parse_text(text, source=source)
    if len(docs) != 1:
        raise ConfigError(f"{source}: expected one document or spec, found {len(docs)}")
    return docs[0]


def detect(data: Any) -> str:
    """``openapi`` (OpenAPI 3 / Swagger 2), ``unla`` (Unla's format) or ``mcpgw`` (ours)."""
    if not isinstance(data, dict):
        raise ConfigError("document: expected a mapping at the top level")
    if "openapi" in data or "swagger" in data:
        return "openapi"
    try:
        from mcpgw_sdk.unla import is_unla
    except ImportError:
        return "mcpgw"
    return "unla" if is_unla(data) else "mcpgw"


def convert(text: str, *, source: str = "upload", tenant: str = "", name: str = "", prefix: str = "",
            base_url: str = "", headers: str = "", config: str = "") -> Preview:
    """Turn uploaded or fetched text into a document of ours, ready to validate and save.

    ``tenant``/``name`` override the document's own; for OpenAPI they and
    ``prefix``/``base_url`` feed :func:`mcpgw_sdk.openapi.from_openapi`, as do ``headers`` and ``config``:
    ``NAME=VALUE`` lines (as the CLI's ``--header`` and ``--config``).
    """
    data = load(text, source=source)
    kind = detect(data)
    if kind == "openapi":
        from mcpgw_sdk.openapi import from_openapi

        if not name:
            raise ConfigError("name: required to import an OpenAPI spec")
        if not tenant:
            raise ConfigError("tenant: required to import an OpenAPI spec")
        content = from_openapi(data, name=name, tenant=tenant, prefix=prefix or None, base_url=base_url or None,
                               headers=pairs(headers, "headers"), config=pairs(config, "config"))
    elif kind == "unla":
        from mcpgw_sdk.unla import import_document

        content = import_document(data, format="unla")
    else:
        content = data
    content = dict(content)
    if tenant:
        content["tenant"] = tenant
    if name and kind != "openapi":
        content["name"] = name
    return Preview(content=content, kind=kind, tools=tool_rows(content))


def suggest_name(data: Any, source: str = "") -> str:
    """A document name for ``data``: an OpenAPI spec's title, a document's own name, else the file's name.

    >>> suggest_name({"openapi": "3.0.3", "info": {"title": "Swagger Petstore"}})
    'swagger-petstore'
    >>> suggest_name({"swagger": "2.0"}, "specs/people.v2.json")
    'people-v2'
    """
    if isinstance(data, dict):
        if "openapi" not in data and "swagger" not in data and isinstance(data.get("name"), str):
            return data["name"]
        info = data.get("info")
        title = info.get("title") if isinstance(info, dict) else None
        if isinstance(title, str) and _slug(title):
            return _slug(title)
    stem = source.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]
    for ext in (".json", ".yaml", ".yml"):
        if stem.lower().endswith(ext):
            return _slug(stem[: -len(ext)])
    return ""  # pasted text without a title: the user names it


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def pairs(text: str, what: str) -> dict[str, str]:
    """``NAME=VALUE`` lines as a map (blank lines skipped); ConfigError naming ``what`` and the line otherwise."""
    out = {}
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: {line.strip()!r} is not NAME=VALUE")
        out[key.strip()] = value.strip()
    return out


def tool_rows(content: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per tool: name, method, endpoint, arguments, description."""
    rows = []
    for tool in content.get("tools") or []:
        args = ", ".join(
            f"{a.get('name')}{'*' if a.get('required') else ''} ({a.get('position', '?')})"
            for a in tool.get("args") or [])
        rows.append({"tool": tool.get("name", ""), "method": tool.get("method", ""),
                     "endpoint": tool.get("endpoint", ""), "arguments": args,
                     "description": (tool.get("description") or "")[:120]})
    for server in content.get("mcpServers") or []:
        rows.append({"tool": f"(all tools of MCP server {server.get('name')})", "method": server.get("type", ""),
                     "endpoint": server.get("url") or " ".join([server.get("command", "")] + server.get("args", [])),
                     "arguments": "", "description": ""})
    return rows


def input_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """The input schema the gateway will publish for a configured tool."""
    try:
        from mcpgw_sdk.documents import tool_input_schema
    except ImportError:
        props = {a["name"]: {"type": a.get("type", "string")} for a in tool.get("args") or []}
        return {"type": "object", "properties": props}
    return tool_input_schema(tool)


def dumps(content: dict[str, Any]) -> str:
    """JSON text of a document, for the preview's raw view."""
    return json.dumps(content, indent=2, ensure_ascii=False)
