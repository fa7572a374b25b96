"""The editor's logic: parse, validate with errors placed by field, save with conflict detection.

Form mode and YAML mode edit the same plain dict (the document's content); the
helpers here convert its lists to the rows ``st.data_editor`` shows and back.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
from dataclasses import dataclass, field
from typing import Any

from mcpgw_sdk.config_model import MCP_TYPES, Arg, Tool, default, default_position
from mcpgw_sdk.errors import ConfigError, ConflictError, Forbidden, NotFound
from mcpgw_sdk.records import Document, User
from mcpgw_sdk.store import Store

from .access import check_tenant

ARG_COLUMNS = ("name", "position", "type", "required", "description", "default")
# The choices the forms offer, in the order they offer them; tests/test_config_model.py keeps them the model's.
ARG_POSITIONS = ("query", "path", "header", "body", "form-data", "file")
ARG_TYPES = ("string", "integer", "number", "boolean", "array", "object")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: What a new row starts with: a new tool's method and type are the model's defaults, a new argument sits
#: where a default (GET) tool's arguments go, a new upstream is the first type the form offers.
NEW_METHOD = default(Tool, "method")
NEW_POSITION = default_position(NEW_METHOD)
NEW_ARG_TYPE = default(Arg, "type")
NEW_MCP_TYPE = MCP_TYPES[0]


@dataclass(frozen=True)
class FieldError:
    """One validation problem: the field path inside the document (``""`` for the whole) and the reason."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


@dataclass
class SaveOutcome:
    """What a save did: the stored document, or the errors, or the conflicting current version."""

    document: Document | None = None
    errors: list[FieldError] = field(default_factory=list)
    conflict: ConflictError | None = None

    @property
    def ok(self) -> bool:
        """True when the document was stored."""
        return self.document is not None


def clone(content: Any) -> Any:
    """A deep copy of a document's content: pickled and unpickled (several times quicker than
    ``copy.deepcopy`` on a document of thousands of tools), ``copy.deepcopy`` for what does not pickle."""
    try:
        return pickle.loads(pickle.dumps(content, pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, TypeError, AttributeError):
        return copy.deepcopy(content)


def parse_error(line: str) -> FieldError:
    """Split ``'tenant/name: path: reason'`` (the validator's format) into path and reason."""
    parts = [p.strip() for p in line.split(": ", 2)]
    if len(parts) == 3 and "/" in parts[0] and " " not in parts[0]:
        return FieldError(parts[1], parts[2])
    if len(parts) >= 2 and _looks_like_path(parts[0]):
        return FieldError(parts[0], ": ".join(parts[1:]))
    if len(parts) == 3 and _looks_like_path(parts[1]):
        return FieldError(parts[1], parts[2])
    return FieldError("", line)


def _looks_like_path(text: str) -> bool:
    head = text.split("[", 1)[0].split(".", 1)[0]
    return head in ("name", "tenant", "routers", "servers", "tools", "prompts", "mcpServers", "description")


def errors_of(exc: ConfigError) -> list[FieldError]:
    """The field errors a ConfigError carries."""
    return [parse_error(line) for line in exc.errors]


def errors_at(errors: list[FieldError], prefix: str) -> list[FieldError]:
    """Errors whose path is ``prefix`` or inside it (``tools[1]`` matches ``tools[1].args[0].type``)."""
    return [e for e in errors if e.path == prefix or e.path.startswith(prefix + ".") or e.path.startswith(prefix + "[")]


def parse_yaml(text: str, *, source: str = "editor") -> dict[str, Any]:
    """Parse YAML or JSON text holding one document; ConfigError naming the line and column otherwise."""
    from mcpgw_sdk.documents import parse_text

    docs = parse_text(text, source=source)
    if len(docs) != 1:
        raise ConfigError(f"{source}: expected one document, found {len(docs)}")
    return docs[0]


def to_yaml(content: dict[str, Any]) -> str:
    """The document as YAML, keys in the format's order."""
    from mcpgw_sdk.documents import to_yaml as sdk_to_yaml

    return sdk_to_yaml(content)


def validate(content: dict[str, Any]) -> list[FieldError]:
    """Every problem of the document (empty when valid)."""
    errors: list[FieldError] = []
    for key in ("name", "tenant"):
        if not str(content.get(key) or "").strip():
            errors.append(FieldError(key, "required"))
    if errors:
        return errors
    from mcpgw_sdk.documents import validate as sdk_validate

    try:
        sdk_validate(content)
    except ConfigError as exc:
        errors.extend(errors_of(exc))
    # The SDK checks templates too; this keeps the message next to the field when it words it differently.
    reported = {e.path for e in errors}
    errors.extend(e for e in template_errors(content) if e.path not in reported)
    return errors


def set_errors(store: Store, content: dict[str, Any]) -> list[FieldError]:
    """What only the whole set reveals: a prefix another document serves, a prefix outside the tenant's."""
    from mcpgw_sdk.documents import key, validate_set

    ident = key(content)
    others = [d.content for d in store.list_documents() if (d.tenant, d.name) != ident]
    tenants = {t.name: t.prefix for t in store.list_tenants()}
    problems = validate_set(others + [content], tenants)
    return [parse_error(line) for line in problems.get(ident, [])]


def save(store: Store, content: dict[str, Any], *, user: User, base_version: int | None) -> SaveOutcome:
    """Validate and store ``content`` as a new version; nothing is written when anything is wrong.

    ``base_version`` is the version the editor loaded (``None`` for a new
    document); a concurrent change makes the outcome carry the conflict.
    """
    try:
        check_tenant(user, str(content.get("tenant") or ""))
    except Forbidden as exc:
        return SaveOutcome(errors=[FieldError("tenant", str(exc).split(": ", 1)[-1])])
    if base_version is None:
        errors = problems(store, content, user)
        if errors:
            return SaveOutcome(errors=errors)
        try:
            current = store.get_document(content["tenant"], content["name"])
        except NotFound:
            current = None
        if current is not None:
            return SaveOutcome(conflict=ConflictError(
                f"{content['tenant']}/{content['name']} already exists (version {current.version})",
                base_version=None, current_version=current.version))
    try:
        doc = store.save_document(clone(content), author=user.name, base_version=base_version, actor=user)
    except ConflictError as exc:
        return SaveOutcome(conflict=exc)
    # The store validated the document (once, for a save that goes through); the editor's own checks
    # word and place the problems by field, as Validate shows them.
    except ConfigError as exc:
        return SaveOutcome(errors=problems(store, content, user) or errors_of(exc))
    except Forbidden as exc:
        return SaveOutcome(errors=problems(store, content, user) or [parse_error(str(exc))])
    return SaveOutcome(document=doc)


def problems(store: Store, content: dict[str, Any], user: User) -> list[FieldError]:
    """What keeps ``content`` from being saved by ``user``, by field: the document, the set, the policy."""
    return validate(content) or set_errors(store, content) or policy_errors(content, user)


def policy_errors(content: dict[str, Any], user: User) -> list[FieldError]:
    """What ``user`` may not save here (a member's stdio upstream), placed by field."""
    from mcpgw_sdk.policy import violations

    try:
        return [parse_error(line) for line in violations(content, actor=user)]
    except ConfigError as exc:
        return errors_of(exc)


def new_document(*, tenant: str, name: str, prefix: str = "") -> dict[str, Any]:
    """A minimal document: one router, one REST server, no tools yet."""
    return {
        "name": name,
        "tenant": tenant,
        "routers": [{"prefix": prefix or f"/{tenant}/{name}", "server": name}],
        "servers": [{"name": name, "description": "", "allowedTools": [], "config": {}}],
        "tools": [],
    }


# -- rows for st.data_editor ------------------------------------------------------
def blank(value: Any) -> bool:
    """True for what an empty table cell holds: None, NaN or whitespace."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or (isinstance(value, str) and not value.strip())


def args_to_rows(tool: dict[str, Any]) -> list[dict[str, Any]]:
    """A tool's ``args`` as table rows with every column present."""
    rows = []
    method = tool.get("method") if isinstance(tool.get("method"), str) else default(Tool, "method")
    for arg in tool.get("args") or []:
        row = {col: arg.get(col) for col in ARG_COLUMNS}
        row["required"] = bool(arg.get("required"))
        row["type"] = row["type"] or default(Arg, "type")
        row["position"] = row["position"] or default_position(method)
        row["description"] = row["description"] or ""
        row["default"] = "" if row["default"] is None else str(row["default"])
        rows.append(row)
    return rows


def rows_to_args(rows: list[dict[str, Any]], *, original: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Table rows back to ``args`` (rows without a name dropped; fields the table lacks kept from ``original``)."""
    by_name = {a.get("name"): a for a in original or []}
    args = []
    for row in rows:
        if blank(row.get("name")):
            continue
        arg = {k: v for k, v in copy.deepcopy(by_name.get(row["name"], {})).items() if k not in ARG_COLUMNS}
        arg = {"name": str(row["name"]).strip(), "position": row.get("position") or NEW_POSITION,
               "required": bool(row.get("required")) and not blank(row.get("required")),
               "type": row.get("type") or NEW_ARG_TYPE, **arg}
        if not blank(row.get("description")):
            arg["description"] = str(row["description"])
        if not blank(row.get("default")):
            arg["default"] = str(row["default"])
        args.append(arg)
    return args


def mapping_to_rows(mapping: dict[str, Any] | None) -> list[dict[str, str]]:
    """A string map (headers, config, env) as ``key``/``value`` rows."""
    return [{"key": str(k), "value": "" if v is None else str(v)} for k, v in (mapping or {}).items()]


def rows_to_mapping(rows: list[dict[str, Any]]) -> dict[str, str]:
    """``key``/``value`` rows back to a map (rows without a key dropped)."""
    return {str(r["key"]).strip(): "" if blank(r.get("value")) else str(r["value"])
            for r in rows if not blank(r.get("key"))}


def split_list(text: str) -> list[str]:
    """``"a, b,,c"`` → ``["a", "b", "c"]``."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def add_arg(tool: dict[str, Any], *, name: str, position: str = NEW_POSITION, type: str = NEW_ARG_TYPE,
            required: bool = False, description: str = "") -> list[FieldError]:
    """Append an argument to ``tool`` in place; return errors (and change nothing) when it is not acceptable."""
    name = name.strip()
    if not name:
        return [FieldError("args.name", "required")]
    if any(a.get("name") == name for a in tool.get("args") or []):
        return [FieldError("args.name", f"{name!r} already exists in tool {tool.get('name')!r}")]
    if position not in ARG_POSITIONS:
        return [FieldError("args.position", f"{position!r} is not one of {', '.join(ARG_POSITIONS)}")]
    arg: dict[str, Any] = {"name": name, "position": position, "required": bool(required), "type": type}
    if description:
        arg["description"] = description
    tool.setdefault("args", []).append(arg)
    return []


def add_tool(content: dict[str, Any], *, name: str, method: str = NEW_METHOD, endpoint: str = "",
             server: str | None = None) -> list[FieldError]:
    """Append a tool (and allow it on the REST server ``server`` or the first one); errors change nothing."""
    name = name.strip()
    if not name:
        return [FieldError("tools.name", "required")]
    if any(t.get("name") == name for t in content.get("tools") or []):
        return [FieldError("tools.name", f"{name!r} already exists")]
    content.setdefault("tools", []).append({"name": name, "description": "", "method": method,
                                            "endpoint": endpoint, "args": []})
    servers = content.get("servers") or []
    target = next((s for s in servers if s.get("name") == server), servers[0] if servers else None)
    if target is not None:
        allowed = target.setdefault("allowedTools", [])
        if name not in allowed:
            allowed.append(name)
    return []


TEMPLATE_FIELDS = ("endpoint", "requestBody", "responseBody")


def template_errors(content: dict[str, Any]) -> list[FieldError]:
    """Templates (endpoints, bodies, headers, server config) that do not parse as Jinja2."""
    from jinja2 import TemplateSyntaxError
    from jinja2.sandbox import SandboxedEnvironment

    env = SandboxedEnvironment()
    found = []

    def check(path: str, text: Any) -> None:
        if not isinstance(text, str) or ("{{" not in text and "{%" not in text):
            return
        try:
            env.parse(text)
        except TemplateSyntaxError as exc:
            found.append(FieldError(path, f"template does not parse (line {exc.lineno}): {exc.message}"))

    for i, tool in enumerate(content.get("tools") or []):
        if not isinstance(tool, dict):
            continue
        for key in TEMPLATE_FIELDS:
            check(f"tools[{i}].{key}", tool.get(key))
        for name, value in (tool.get("headers") or {}).items():
            check(f"tools[{i}].headers.{name}", value)
    for i, server in enumerate(content.get("servers") or []):
        if isinstance(server, dict):
            for name, value in (server.get("config") or {}).items():
                check(f"servers[{i}].config.{name}", value)
    return found


ROUTER_COLUMNS = ("prefix", "server", "auth")
MCP_COLUMNS = ("name", "type", "command", "args", "url")


def routers_to_rows(routers: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Routers as ``prefix``/``server``/``auth`` rows."""
    return [{"prefix": r.get("prefix", ""), "server": r.get("server", ""),
             "auth": (r.get("auth") or {}).get("mode", "")} for r in routers or []]


def rows_to_routers(rows: list[dict[str, Any]], *, original: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Rows back to routers, keeping what the table does not show (``cors``, ``servers``, …) by prefix."""
    old = {r.get("prefix"): r for r in original or []}
    routers = []
    for row in rows:
        if blank(row.get("prefix")):
            continue
        before = old.get(row["prefix"], {})
        router = {"prefix": str(row["prefix"]).strip(),
                  **{k: copy.deepcopy(v) for k, v in before.items() if k not in ROUTER_COLUMNS}}
        if not blank(row.get("server")):
            router["server"] = str(row["server"]).strip()
        if not blank(row.get("auth")):
            router["auth"] = {**(before.get("auth") or {}), "mode": str(row["auth"]).strip()}
        routers.append(router)
    return routers


def mcp_to_rows(servers: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Upstream MCP servers as rows (``args`` space separated)."""
    return [{"name": s.get("name", ""), "type": s.get("type", NEW_MCP_TYPE), "command": s.get("command", ""),
             "args": " ".join(s.get("args") or []), "url": s.get("url", "")} for s in servers or []]


def rows_to_mcp(rows: list[dict[str, Any]], *, original: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Rows back to upstream MCP servers, keeping fields the table does not show (``env``, ``policy``, …)."""
    old = {s.get("name"): s for s in original or []}
    servers = []
    for row in rows:
        if blank(row.get("name")):
            continue
        item = {"name": str(row["name"]).strip(), "type": row.get("type") or NEW_MCP_TYPE,
                **{k: copy.deepcopy(v) for k, v in old.get(row["name"], {}).items() if k not in MCP_COLUMNS}}
        for key in ("command", "url"):
            if not blank(row.get(key)):
                item[key] = str(row[key]).strip()
        if not blank(row.get("args")):
            item["args"] = str(row["args"]).split()
        servers.append(item)
    return servers


SHAPE_COLUMNS = ("tool", "name", "title", "description", "hidden", "arguments", "annotations")


def shapes_to_rows(shapes: dict[str, Any] | None) -> list[dict[str, Any]]:
    """A router's tool shaping (``routers[].tools``) as rows; ``arguments``/``annotations`` as JSON text."""
    rows = []
    for tool, shape in (shapes or {}).items():
        shape = shape if isinstance(shape, dict) else {}
        rows.append({"tool": tool, "name": shape.get("name", ""), "title": shape.get("title", ""),
                     "description": shape.get("description", ""), "hidden": bool(shape.get("hidden")),
                     "arguments": json.dumps(shape["arguments"], ensure_ascii=False) if shape.get("arguments") else "",
                     "annotations": json.dumps(shape["annotations"], ensure_ascii=False)
                     if shape.get("annotations") else ""})
    return rows


def rows_to_shapes(rows: list[dict[str, Any]], path: str) -> tuple[dict[str, Any], list[FieldError]]:
    """Rows back to ``routers[].tools`` (rows without a tool dropped), and the JSON cells that do not parse.

    >>> rows_to_shapes([{"tool": "t", "name": "u", "arguments": '{"org": {"fixed": "acme"}}'}], "routers[0]")
    ({'t': {'name': 'u', 'arguments': {'org': {'fixed': 'acme'}}}}, [])
    """
    shapes: dict[str, Any] = {}
    problems: list[FieldError] = []
    for row in rows:
        if blank(row.get("tool")):
            continue
        tool = str(row["tool"]).strip()
        shape: dict[str, Any] = {}
        for key in ("name", "title", "description"):
            if not blank(row.get(key)):
                shape[key] = str(row[key]).strip() if key == "name" else str(row[key])
        if row.get("hidden") is True:
            shape["hidden"] = True
        for key in ("arguments", "annotations"):
            if blank(row.get(key)):
                continue
            try:
                value = json.loads(str(row[key]))
            except ValueError as exc:
                problems.append(FieldError(f"{path}.tools.{tool}.{key}", f"not JSON: {exc}"))
                continue
            if not isinstance(value, dict):
                problems.append(FieldError(f"{path}.tools.{tool}.{key}", 'expected a JSON object, e.g. '
                                           '{"org": {"fixed": "acme"}}' if key == "arguments" else
                                           'expected a JSON object, e.g. {"readOnlyHint": true}'))
                continue
            shape[key] = value
        shapes[tool] = shape
    return shapes, problems


def put(item: dict[str, Any], key: str, value: Any, *, keep_empty: bool = False) -> None:
    """Set ``item[key]``; an empty value removes the key, or (``keep_empty``) is stored only if the key was there.

    So a form never adds ``description: ''`` or ``config: {}`` a document did not have.
    """
    if value not in ("", [], {}, None):
        item[key] = value
    elif keep_empty and key in item:
        item[key] = value
    else:
        item.pop(key, None)


# -- which document a form belongs to ----------------------------------------------
def form_key(ident: str | None, base: int | None) -> str:
    """The identity of one editing session of one document version: ``"acme/users@3"`` (``"new@0"``).

    Widget keys carry it, so a value typed for one document (or version) can never reach another's form.
    """
    return f"{ident or 'new'}@{base or 0}"


def foreign_errors(content: dict[str, Any], *, ident: str | None, form: str | None,
                   base: int | None) -> list[FieldError]:
    """Why ``content`` may not be saved as the loaded document ``ident`` (version ``base``); empty when it may.

    The form must be the one made for this document and version, and the content must still name it:
    a renamed document is a new one (start it from *+ New document*).
    """
    if form != form_key(ident, base):
        return [FieldError("", f"this form was made for {form}, not {form_key(ident, base)}: reload the document")]
    if ident is None:
        return []
    named = f"{content.get('tenant')}/{content.get('name')}"
    if named != ident:
        field = "tenant" if str(content.get("tenant")) != ident.split("/", 1)[0] else "name"
        return [FieldError(field, f"this editor holds {ident}, the content names {named}: to make another "
                                  "document, start it from + New document")]
    return []


# -- many tools at once -----------------------------------------------------------------
def tool_errors(errors: list[FieldError]) -> dict[int, list[FieldError]]:
    """Errors by tool index (``tools[3].endpoint`` → 3)."""
    found: dict[int, list[FieldError]] = {}
    for error in errors:
        if error.path.startswith("tools[") and "]" in error.path:
            index = error.path[len("tools["):error.path.index("]")]
            if index.isdigit():
                found.setdefault(int(index), []).append(error)
    return found


def matching_tools(content: dict[str, Any], query: str = "") -> list[int]:
    """Indices of the tools whose name contains ``query`` (case-insensitive; all for an empty query)."""
    needle = query.strip().lower()
    return [i for i, tool in enumerate(content.get("tools") or [])
            if isinstance(tool, dict) and needle in str(tool.get("name", "")).lower()]


def server_tools(content: dict[str, Any], server: str) -> list[int]:
    """Indices of the tools the REST server ``server`` exposes (its ``allowedTools``; all when absent)."""
    spec = next((s for s in content.get("servers") or [] if s.get("name") == server), None)
    if spec is None:
        return []
    allowed = spec.get("allowedTools")
    return [i for i, tool in enumerate(content.get("tools") or [])
            if isinstance(tool, dict) and (allowed is None or tool.get("name") in allowed)]


def set_header(content: dict[str, Any], tools: list[int], name: str, value: str) -> int:
    """Set header ``name`` to ``value`` (a template) on the tools at ``tools``; an empty value removes it.

    Returns how many tools changed.

    >>> doc = {"tools": [{"name": "a"}, {"name": "b", "headers": {"X": "1"}}]}
    >>> set_header(doc, [0, 1], "Authorization", "Bearer {{ env('TOKEN') }}"), doc["tools"][0]["headers"]
    (2, {'Authorization': "Bearer {{ env('TOKEN') }}"})
    """
    name = name.strip()
    changed = 0
    for i in tools:
        tool = content["tools"][i]
        headers = dict(tool.get("headers") or {})
        before = dict(headers)
        if value:
            headers[name] = value
        else:
            headers.pop(name, None)
        if headers != before:
            changed += 1
        put(tool, "headers", headers)
    return changed


def set_timeout(content: dict[str, Any], tools: list[int], seconds: float | None) -> int:
    """Set ``timeout`` (seconds, > 0) on the tools at ``tools``; ``None`` removes it. Returns how many changed."""
    if seconds is not None and not seconds > 0:
        raise ConfigError(f"timeout: must be a number of seconds > 0, not {seconds!r}")
    changed = 0
    for i in tools:
        tool = content["tools"][i]
        if tool.get("timeout") != seconds:
            changed += 1
        put(tool, "timeout", seconds)
    return changed


def allow_tools(content: dict[str, Any], server: str, names: list[str], *, allowed: bool) -> int:
    """Add ``names`` to (or, ``allowed=False``, take them off) the REST server's ``allowedTools``.

    A server without ``allowedTools`` exposes every tool; denying some lists the others explicitly.
    Returns how many names changed state.
    """
    spec = next(s for s in content.get("servers") or [] if s.get("name") == server)
    every = [str(t.get("name")) for t in content.get("tools") or [] if isinstance(t, dict)]
    current = list(spec["allowedTools"]) if spec.get("allowedTools") is not None else list(every)
    present = set(current)
    if allowed:
        added = [n for n in names if n not in present]
        spec["allowedTools"] = current + added
        return len(added)
    gone = set(names) & present
    spec["allowedTools"] = [n for n in current if n not in gone]
    return len(gone)
