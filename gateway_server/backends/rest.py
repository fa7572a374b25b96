"""REST tool execution: a document's REST server as an MCP :class:`~gateway_server.backends.Backend`.

Per call: render the server's ``config`` templates, then the tool's endpoint,
headers and request body with ``args``/``config``/``request``; place the
arguments by position (path, query, header, body, form-data, file); send the
request through the pooled, guarded client; turn the response into MCP
content. Every failure — a template that does not render, a refused address,
a timeout, an HTTP error status — is an ``isError`` result with a text that
says what happened, never an exception.

>>> server = RestServer(name="users", server=doc["servers"][0], tools=doc["tools"], document=doc)  # doctest: +SKIP
>>> server.call_tool("get_user", {"email": "a@example.com"}, CallContext())  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlencode, urlsplit

from mcpgw_sdk import config_model
from mcpgw_sdk.config_model import POSITIONS, Prompt, Tool
from mcpgw_sdk.config_model import RestServer as RestEntry
from mcpgw_sdk.errors import McpgwError
from mcpgw_sdk.settings import Settings, resolve
from mcpgw_sdk.templates import quote_segment, quote_url_text, render_deadline

from ..token_exchange import ExchangeFailed, TokenExchange, without_credentials
from . import CallContext, InputRefused, credentials
from .content import error_result, http_error_result, parse_json, response_result
from .guard import Authority, Refused, authorities, document_texts, url_authority
from .http import HttpClient, HttpError, default_client

#: The ``inputRequests`` key of a tool's ``elicit`` question, and the state it goes out with (sealed by the core).
ELICIT_KEY = "elicit"
ELICIT_STATE = "mcpgw-rest-elicit/1"
#: The tenant of a document that names none (the model's default).
NO_TENANT = config_model.default(config_model.Document, "tenant")
MODERN_VERSION = "2026-07-28"
#: Bytes of a pass-through body read before the call returns: a body that ends within them is answered
#: whole as before (its failures are isError results); a longer one streams on (``CallContext.stream_text``).
STREAM_WINDOW = 1 << 20


class _Failed(Exception):
    """Internal: stops a call with an ``isError`` text."""


class _Answered(Exception):
    """Internal: stops a call before the backend with this result (``input_required``, declined, refused)."""

    def __init__(self, result: dict[str, Any]):
        super().__init__("answered")
        self.result = result


#: The template context of a tool whose templates are all plain text (nothing reads it).
_NO_CONTEXT: dict[str, Any] = {}


class _Plain:
    """A template without Jinja markup: rendering is the text itself (the common case, kept cheap)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def render(self, context: dict[str, Any]) -> str:
        return self.text


def _template(text: Any, field: str, *, url: bool = False, raw: frozenset[str] = frozenset()):
    """A compiled template, or the TemplateError to report when the tool is called.

    ``url``: an endpoint, whose non-config values are percent-encoded (``raw`` names the arguments kept as URL text).
    """
    from mcpgw_sdk.templates import compile_template, compile_url_template

    text = str(text)
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return _Plain(text)
    try:
        return compile_url_template(text, field=field, raw=raw) if url else compile_template(text, field=field)
    except McpgwError as exc:
        return exc


_CONFIG_REF = re.compile(r"\{\{\s*config\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _constant(template: Any, config: dict[str, str]) -> Any:
    """``template`` as plain text when it only inserts plain ``config`` values (``{{ config.baseUrl }}/users``).

    Such an endpoint renders the same on every call, so it is rendered once per snapshot
    instead of through Jinja per call. Anything else is returned unchanged.
    """
    text = getattr(template, "text", None)
    if isinstance(template, (_Plain, Exception)) or not isinstance(text, str) or "\r" in text:
        return template
    rest = _CONFIG_REF.sub("", text)
    if "{{" in rest or "{%" in rest or "{#" in rest:
        return template
    names = _CONFIG_REF.findall(text)
    if not all(isinstance(config.get(name), str) for name in names):
        return template
    return _Plain(_CONFIG_REF.sub(lambda m: config[m.group(1)], text))


def _render(template, context: dict[str, Any], field: str) -> str:
    if isinstance(template, Exception):
        raise _Failed(f"invalid template {template}" if str(template).startswith(field)
                      else f"invalid template {field}: {template}")
    try:
        return template.render(context)
    except Exception as exc:  # noqa: BLE001 - Jinja raises many kinds; report them all the same way
        missing = credentials.missing_text(context.get("secrets"))
        if missing:  # the caller has not set a secret the template reads: say which, and where to set it
            raise _Failed(missing) from None
        reason = str(exc) if isinstance(exc, McpgwError) else f"{type(exc).__name__}: {exc}"
        raise _Failed(f"cannot render {reason}" if reason.startswith(field) else f"cannot render {field}: {reason}") from None


def _coerce(value: Any, kind: str | None) -> Any:
    """Convert string forms (defaults are strings) to the declared JSON type for rendering.

    An integer argument given as a whole float (``5.0``, which JSON Schema counts as an integer) is the
    ``int`` 5, so it is sent as ``5``, never ``5.0``.
    """
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str) or not kind or kind == "string":
        return value
    text = value.strip()
    try:
        if kind == "integer":
            try:
                return int(text)
            except ValueError:  # "5.0" is the integer 5 (sent as 5); "5.5" stays as it is
                number = float(text)
                return int(number) if number.is_integer() else value
        if kind == "number":
            number = float(text)
            return int(number) if number.is_integer() and "." not in text else number
        if kind == "boolean":
            if text.lower() in ("true", "1", "yes"):
                return True
            if text.lower() in ("false", "0", "no", ""):
                return False
        if kind in ("array", "object"):
            return json.loads(text)
    except ValueError:
        pass
    return value


def _as_text(value: Any) -> str:
    """How an argument goes into a URL, header or form field."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
#: ``type/subtype`` with optional ``; name=value`` parameters (RFC 9110), nothing that could end the header line.
_MEDIA_TYPE = re.compile(rf'{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|"[^"\\\x00-\x1f\x7f]*"))*')
_MAX_MEDIA_TYPE = 256


def _file_part(arg: str, value: Any) -> tuple[str, bytes, str]:
    """(filename, content, content type) from base64 text or ``{name, content, contentType}``.

    The content type must be a plain media type (``image/png; charset=x``): a value that could
    end the part's header line or add headers to it is refused, never passed on.
    """
    if isinstance(value, dict):
        filename = str(value.get("name") or arg)
        encoded = value.get("content", "")
        kind = str(value.get("contentType") or "application/octet-stream")
    else:
        filename, encoded, kind = arg, value, "application/octet-stream"
    if len(kind) > _MAX_MEDIA_TYPE or not _MEDIA_TYPE.fullmatch(kind):
        raise _Failed(f"argument {arg!r}: contentType {kind[:80]!r} is not a media type such as image/png")
    try:
        filename.encode("utf-8")
    except UnicodeEncodeError:
        raise _Failed(f"argument {arg!r}: the file name is not valid Unicode text") from None
    try:
        content = base64.b64decode(str(encoded), validate=True)
    except (binascii.Error, ValueError):
        raise _Failed(f"argument {arg!r}: file content is not valid base64") from None
    return filename, content, kind


def _multipart(fields: list[tuple[str, str]], files: list[tuple[str, str, bytes, str]]) -> tuple[bytes, str]:
    boundary = "mcpgw-" + uuid.uuid4().hex
    out: list[bytes] = []
    for name, value in fields:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_field(name)}"\r\n\r\n'.encode()
                   + value.encode() + b"\r\n")
    for name, filename, content, kind in files:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote_field(name)}"; '
                   f'filename="{_quote_field(filename)}"\r\nContent-Type: {kind}\r\n\r\n'.encode() + content + b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


_UNSAFE_IN_QUOTES = re.compile(r'["\x00-\x1f\x7f]')


def _quote_field(text: str) -> str:
    """A name or file name for a quoted Content-Disposition parameter: quotes and control characters
    (CR and LF above all) are percent-encoded as RFC 7578 and browsers do, so they cannot end the header."""
    return _UNSAFE_IN_QUOTES.sub(lambda m: f"%{ord(m.group(0)):02X}", text.replace("\\", "\\\\"))


class _Tool:
    """A tool of the server, compiled once per snapshot."""

    #: Set by :meth:`RestServer._prepare`: nothing to render per call; the endpoint's fixed authority.
    plain = False
    authority: Authority | None = None

    def __init__(self, tool: Tool, descriptor: dict[str, Any]):
        name = tool.name
        self.name = name
        self.descriptor = descriptor
        self.method = tool.method.upper()
        where = f"tools[{name}]"
        endpoint = tool.endpoint
        # Arguments whose value is inserted into the URL as URL text (``raw: true``): they may hold slashes.
        self.raw = frozenset(arg.name for arg in tool.args if arg.raw is True)
        self.endpoint = _template(endpoint, f"{where}.endpoint", url=True, raw=self.raw)
        self.headers = {key: _template(value, f"{where}.headers.{key}") for key, value in tool.headers.items()}
        body = tool.request_body
        self.request_body = _template(body, f"{where}.requestBody") if body not in (None, "") else None
        response = tool.response_body
        self.response_body = _template(response, f"{where}.responseBody") if response not in (None, "") else None
        self.output_schema = tool.output_schema
        self.timeout = float(tool.timeout) if tool.timeout is not None else None
        self.retries = int(tool.retries)
        self.max_bytes = int(tool.max_response_bytes) if tool.max_response_bytes is not None else None
        self.proxy = tool.proxy
        elicit = tool.elicit
        # (message template, requestedSchema, {answer field: argument}) of the question asked before the call.
        self.elicit = None if elicit is None else (
            _template(elicit.message, f"{where}.elicit.message"), dict(elicit.requested_schema), dict(elicit.fill))
        self.args: list[tuple[str, str, str | None, Any]] = [(arg.name, arg.position, arg.type, arg.default)
                                                             for arg in tool.args]
        self.by_position = {position: [a for a in self.args if a[1] == position] for position in POSITIONS}
        # ``field``: the name an argument is sent under (query key, header, form field, JSON property).
        self.wire = {arg.name: arg.field for arg in tool.args if arg.field}
        # Templates can only reach the client's request by naming it; without that, skip building it.
        self.uses_request = any("request" in str(text) for text in [endpoint, body, response, *tool.headers.values()])


class RestServer:
    """A REST server of a config document, serving its tools over MCP.

    ``server`` is the ``servers[]`` entry, ``tools`` the document's ``tools``
    (filtered by the server's ``allowedTools``, kept in config order),
    ``document`` the whole document (its ``prompts`` are served too). ``client``
    defaults to the process-wide pooled client; ``settings`` (``forward_headers``,
    ``tool_timeout``, ``max_response_bytes``) to :func:`~mcpgw_sdk.settings.resolve`'s.
    """

    #: A REST call never notifies the client and is bounded by its tool timeout (see ``backends.may_notify``).
    may_notify = False
    #: What a REST server offers is fixed by its document (see ``backends.static_capabilities``).
    static_capabilities = True

    def __init__(self, *, name: str, server: RestEntry | dict[str, Any], tools: list[Tool] | list[dict[str, Any]],
                 document: Any = None, client: HttpClient | None = None, settings: Settings | None = None,
                 prompts: tuple[Prompt, ...] | None = None, **_ignored: Any):
        self.name = name
        settings = settings if settings is not None else resolve()
        entry = server if isinstance(server, RestEntry) else RestEntry.from_dict(server)
        self.server = entry
        content = getattr(document, "content", document) or {}
        self.client = client
        config = entry.config
        self.config = {key: _template(value, f"servers[{entry.name or name}].config.{key}")
                       for key, value in config.items()}
        allowed_set = set(entry.allowed_tools) if entry.allowed_tools is not None else None
        from mcpgw_sdk.documents import tool_input_schema

        # Descriptors now (the snapshot lists them); a tool's templates are compiled at its first call
        # (see _tool): a big catalog builds many servers whose tools are never called.
        self._specs: dict[str, Tool | dict[str, Any]] = {}
        self._descriptors: dict[str, dict[str, Any]] = {}
        for tool in tools:
            raw = tool.raw if isinstance(tool, Tool) else tool
            tool_name = raw.get("name")
            tool_name = "" if tool_name is None else tool_name
            if allowed_set is not None and tool_name not in allowed_set:
                continue
            self._specs[tool_name] = tool
            self._descriptors[tool_name] = self._descriptor(raw, tool_input_schema(raw))
        self.tools: dict[str, _Tool] = {}  # compiled so far
        if prompts is None:
            prompts = tuple(Prompt.from_dict(p) for p in content.get("prompts") or [] if isinstance(p, dict) and "name" in p)
        self.prompts = {p.name: p for p in prompts}
        self.tenant = content.get("tenant") or NO_TENANT  # whose fallback secrets its templates may read
        # A config of plain values (the common case) is the same for every call: build it once.
        self.plain_config = ({key: tpl.text for key, tpl in self.config.items()}
                             if all(isinstance(tpl, _Plain) for tpl in self.config.values()) else None)
        # Authorities (scheme, host, port) the document writes, for all its tools: found at the first call
        # (see literal_hosts), not when the snapshot is built (a big catalog builds many servers never called).
        self._literal_inputs = (content, config)
        self._literals: frozenset[Authority] | None = None
        self.config_uses_request = any("request" in str(value) for value in config.values())
        self.forward_headers = tuple(h.strip().lower() for h in settings.forward_headers if h.strip())
        self.default_timeout = float(settings.tool_timeout)
        self.default_max_bytes = int(settings.max_response_bytes)
        # tokenExchange (RFC 8693): the caller's OAuth token is traded for one meant for this server.
        self.exchange = TokenExchange(entry.token_exchange, server=name) if entry.token_exchange is not None else None

    def literal_hosts(self) -> frozenset[Authority]:
        """The authorities this server's tools may reach when they are loopback/private (computed once)."""
        literals = self._literals
        if literals is None:
            content, config = self._literal_inputs
            typed = [spec if isinstance(spec, Tool) else Tool.from_dict(spec) for spec in self._specs.values()]
            literals = self._literals = self._literal_authorities(content, config, typed)
        return literals

    def _tool(self, name: str) -> _Tool | None:
        """The tool ``name`` compiled (once; a race under gevent compiles it twice, the same), or ``None``."""
        compiled = self.tools.get(name)
        if compiled is None:
            spec = self._specs.get(name)
            if spec is None:
                return None
            compiled = _Tool(spec if isinstance(spec, Tool) else Tool.from_dict(spec), self._descriptors[name])
            if self.plain_config is not None:
                compiled.endpoint = _constant(compiled.endpoint, self.plain_config)
            self._prepare(compiled)
            self.tools[name] = compiled
        return compiled

    @staticmethod
    def _descriptor(tool: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
        descriptor: dict[str, Any] = {"name": tool["name"], "description": tool.get("description") or "",
                                      "inputSchema": schema}
        annotations = tool.get("annotations")
        if annotations:
            descriptor["annotations"] = dict(annotations)
            if annotations.get("title"):
                descriptor["title"] = annotations["title"]
        if tool.get("outputSchema"):
            descriptor["outputSchema"] = tool["outputSchema"]
        if tool.get("meta"):
            descriptor["_meta"] = dict(tool["meta"])
        return descriptor

    # -- Backend -------------------------------------------------------------
    def list_tools(self) -> list[dict[str, Any]]:
        """MCP tool descriptors in config order, only the server's ``allowedTools``."""
        return list(self._descriptors.values())

    def call_tool(self, name: str, arguments: dict[str, Any], ctx: CallContext | None = None) -> dict[str, Any]:
        """Run a tool: build and send its request, return a ``CallToolResult`` (failures as ``isError``)."""
        tool = self._tool(name)
        if tool is None:
            return error_result(f"unknown tool {name!r} on server {self.name!r}")
        if tool.proxy:
            return error_result(f"tool {name!r} uses a proxy ({tool.proxy.type}), which mcpgw "
                                "does not support yet; remove tools[].proxy")
        ctx = ctx or CallContext()
        arguments = arguments or {}
        try:
            if tool.elicit is not None:  # ask the user first; the time they take is not the tool's
                arguments = self._elicit(tool, arguments, ctx)
            if tool.plain:  # nothing to render (see _prepare): no render deadline to set
                return self._call(tool, arguments, ctx)
            # The tool's timeout covers rendering its templates too (render_timeout bounds each render).
            end = time.monotonic() + (tool.timeout if tool.timeout is not None else self.default_timeout)
            with render_deadline(min(end, ctx.deadline) if ctx.deadline is not None else end):
                return self._call(tool, arguments, ctx)
        except _Answered as exc:
            return exc.result
        except InputRefused:  # a malformed MRTR answer is the core's JSON-RPC error
            raise
        except _Failed as exc:
            return error_result(f"tool {name!r}: {exc}")
        except Refused as exc:
            return error_result(str(exc))
        except HttpError as exc:
            return error_result(str(exc))
        except ExchangeFailed as exc:
            return error_result(f"tool {name!r}: {exc}")
        except Exception as exc:  # noqa: BLE001 - a call never raises into the core
            return error_result(f"tool {name!r} failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Nothing to release: connections belong to the shared pool, which outlives snapshots."""

    # -- elicit: ask the user before the call (docs/rest-tools.md, "Asking first") ----------------------
    def _elicit(self, tool: _Tool, arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """The arguments to call with once the user accepted; else raise :class:`_Answered`.

        A 2026-07-28 caller is answered ``input_required`` (the core seals :data:`ELICIT_STATE` and
        checks the client declared ``elicitation``) until its retry brings the answer with that
        state; a legacy caller that declared ``elicitation`` is sent ``elicitation/create``.
        """
        template, schema, fill = tool.elicit
        with render_deadline(time.monotonic() + (tool.timeout or self.default_timeout)):
            message = _render(template, {"args": dict(arguments)}, f"tools[{tool.name}].elicit.message")
        params = {"message": message, "requestedSchema": schema}
        modern = ctx.protocol_version == MODERN_VERSION
        if modern:
            answer = (ctx.input_responses or {}).get(ELICIT_KEY)
            if answer is None or ctx.request_state != ELICIT_STATE:  # first round, or the answer is missing
                ctx.input_upstream = self.name  # sealed into the state: the retry must reach this server
                raise _Answered({"resultType": "input_required", "requestState": ELICIT_STATE, "inputRequests": {
                    ELICIT_KEY: {"method": "elicitation/create", "params": params}}})
        else:
            if "elicitation" not in (ctx.client_capabilities or {}) or ctx.request is None:
                raise _Answered(error_result(
                    f"tool {tool.name!r} asks the user to confirm before it runs, and this client did not declare "
                    "the elicitation capability; nothing was sent"))
            try:
                answer = ctx.request("elicitation/create", params)
            except Exception as exc:  # noqa: BLE001 - an error answer, a timeout, a closed stream
                raise _Answered(error_result(f"tool {tool.name!r}: the question to the user failed ({exc}); "
                                             "nothing was sent")) from None
        return self._answered(tool, schema, fill, answer, arguments, modern)

    def _answered(self, tool: _Tool, schema: dict[str, Any], fill: dict[str, str], answer: Any,
                  arguments: dict[str, Any], modern: bool) -> dict[str, Any]:
        """Check the user's answer: accepted → the arguments with ``fill`` applied; else raise :class:`_Answered`."""
        from jsonschema import Draft202012Validator

        def malformed(why: str) -> Exception:
            text = f"tool {tool.name!r}: the elicitation answer {why}"
            if modern:  # MRTR: malformed input responses are -32602
                return InputRefused(-32602, f"inputResponses.{ELICIT_KEY}: {why}")
            return _Answered(error_result(text + "; nothing was sent"))

        action = answer.get("action") if isinstance(answer, dict) else None
        if action not in ("accept", "decline", "cancel"):
            raise malformed("must be an object whose action is accept, decline or cancel")
        content = answer.get("content")
        if action == "accept":
            content = {} if content is None else content
            if not isinstance(content, dict):
                raise malformed("content must be an object")
            problem = next(iter(Draft202012Validator(schema).iter_errors(content)), None)
            if problem is not None:
                where = ".".join(str(p) for p in problem.path)
                raise malformed(f"does not match requestedSchema{f' at {where}' if where else ''}: {problem.message}")
            # A required yes/no field answered "no" is a refusal too (confirm: false).
            flags = [k for k in schema.get("required") or []
                     if (schema.get("properties") or {}).get(k, {}).get("type") == "boolean"]
            if any(content.get(k) is False for k in flags):
                action = "decline"
        if action != "accept":
            verb = "declined" if action == "decline" else "cancelled"
            return_text = f"tool {tool.name!r} was not run: the user {verb} (nothing was sent)"
            raise _Answered({"content": [{"type": "text", "text": return_text}]})
        merged = dict(arguments)
        for field, arg in fill.items():
            if field in content:
                merged[arg] = content[field]
        return merged

    # -- prompts -------------------------------------------------------------
    def list_prompts(self) -> list[dict[str, Any]]:
        """The document's prompts as MCP prompt descriptors."""
        return [{"name": p.name, "description": p.description,
                 "arguments": [{"name": a.name, "description": a.description, "required": bool(a.required)}
                               for a in p.arguments]}
                for p in self.prompts.values()]

    def get_prompt(self, name: str, arguments: dict[str, Any] | None, ctx: CallContext | None = None) -> dict:
        """A prompt's messages with ``{argName}`` replaced; LookupError for an unknown prompt."""
        prompt = self.prompts.get(name)
        if prompt is None:
            raise LookupError(f"unknown prompt {name!r}")
        arguments = arguments or {}
        missing = [a.name for a in prompt.arguments if a.required and a.name not in arguments]
        if missing:
            raise ValueError(f"prompt {name!r}: missing required argument(s) {', '.join(missing)}")
        messages = []
        for item in prompt.prompt_response:
            text = str(item.content.text)
            for key, value in arguments.items():
                text = text.replace("{" + key + "}", _as_text(value))
            messages.append({"role": item.role, "content": {"type": "text", "text": text}})
        return {"description": prompt.description, "messages": messages}

    # -- the call ------------------------------------------------------------
    def _prepare(self, tool: _Tool) -> None:
        """Decide, once per compiled tool, what none of its calls has to work out again.

        ``plain``: every template of the tool is plain text (config values already inlined by
        :func:`_constant`), so a call renders nothing and builds no template context (secrets, request,
        config). ``authority``: the endpoint's ``(scheme, host, port)`` when no argument can change it
        (nothing to fill in before the path starts), so the guard's literal check parses no URL per call.
        """
        endpoint = tool.endpoint
        tool.plain = (self.exchange is None and tool.elicit is None and tool.response_body is None
                      and isinstance(endpoint, _Plain) and all(isinstance(t, _Plain) for t in tool.headers.values())
                      and (tool.request_body is None or isinstance(tool.request_body, _Plain)))
        tool.authority = None
        if isinstance(endpoint, _Plain):
            text = endpoint.text.strip()
            scheme, sep, rest = text.partition("://")
            # Arguments fill {name} placeholders after this point, percent-encoded: the host stays the same.
            # (No whitespace or control characters either: urlsplit would drop some of them.)
            head = scheme + sep + re.split(r"[/?#]", rest, maxsplit=1)[0]
            if sep and "{" not in head and text.isprintable() and " " not in text:
                tool.authority = url_authority(text)

    def _call(self, tool: _Tool, arguments: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        args: dict[str, Any] = dict(arguments)
        for arg_name, _position, kind, default in tool.args:
            if args.get(arg_name) is None and default is not None:
                args[arg_name] = default
            if arg_name in args:
                args[arg_name] = _coerce(args[arg_name], kind)
        if tool.plain:  # its templates are plain text (see _prepare): rendering reads no context
            context: dict[str, Any] = _NO_CONTEXT
        else:
            context = self._context(tool, args, ctx)
            if self.exchange is not None:  # the caller's own credential reaches no template and no forwarded header
                ctx = replace(ctx, headers=without_credentials(ctx.headers))
        url = self._url(tool, args, context)
        headers = self._headers(tool, args, context, ctx)
        body = self._body(tool, args, context, headers)
        timeout = tool.timeout if tool.timeout is not None else self.default_timeout
        if ctx.deadline is not None:
            timeout = max(min(timeout, ctx.deadline - time.monotonic()), 0.001)
        if self.exchange is not None:  # the backend token replaces whatever the templates put in its header
            end = time.monotonic() + timeout
            name, value = self.exchange.header(ctx.subject_token, deadline=end)
            headers = {k: v for k, v in headers.items() if k.lower() != name.lower()}
            headers[name] = value
            timeout = max(end - time.monotonic(), 0.001)
        # Trust is decided on the rendered authority alone: however the URL was built (arguments, client
        # headers, filters), it may reach a loopback/private address only when it names an authority the
        # document wrote (or the operator allow-lists, which the guard checks).
        literal_hosts = self.literal_hosts()
        authority = tool.authority if tool.authority is not None else url_authority(url)
        literal = authority in literal_hosts  # no host: None, never literal
        client = self.client or default_client()
        # A body passed on as it is may stay on its connection past the first window and be read as it
        # is written to the client (content.StreamedText), when the transport writes it that way.
        window = STREAM_WINDOW if ctx.stream_text and tool.response_body is None and tool.output_schema is None \
            else None
        resp = client.request(tool.method, url, headers=headers, body=body, timeout=timeout,
                              max_bytes=tool.max_bytes or self.default_max_bytes, literal=literal,
                              literal_hosts=literal_hosts, retries=tool.retries, window=window)
        if resp.status >= 400:
            return http_error_result(resp)
        if tool.response_body is not None:
            context["response"] = {"status": resp.status, "headers": resp.headers, "data": parse_json(resp),
                                   "body": resp.text}
            text = _render(tool.response_body, context, f"tools[{tool.name}].responseBody")
            return response_result(resp, text=text, output_schema=tool.output_schema)
        return response_result(resp, output_schema=tool.output_schema)

    def _context(self, tool: _Tool, args: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """The template context of a call: ``args``, ``request``, ``secrets`` and the rendered ``config``."""
        from mcpgw_sdk.templates import request_context

        secrets = credentials.view(ctx, self.tenant)  # on the caller's ctx: the core masks what it decrypts
        if self.exchange is not None:  # the caller's own credential reaches no template
            ctx = replace(ctx, headers=without_credentials(ctx.headers))
        if tool.uses_request or self.config_uses_request:
            request = request_context(ctx.headers, ctx.query, ctx.cookies)
            if isinstance(request, dict) and "request" in request and "headers" not in request:
                request = request["request"]
        else:
            request = request_context(None, None, None)
        context: dict[str, Any] = {"args": args, "request": request, "secrets": secrets}
        if self.plain_config is not None:
            context["config"] = dict(self.plain_config)  # a copy: a template may not change the next call's
        else:
            context["config"] = {key: _render(tpl, context, f"servers[{self.name}].config.{key}")
                                 for key, tpl in self.config.items()}
        return context

    def _url(self, tool: _Tool, args: dict[str, Any], context: dict[str, Any]) -> str:
        url = _render(tool.endpoint, context, f"tools[{tool.name}].endpoint").strip()
        for arg_name, *_ in tool.by_position["path"]:
            if args.get(arg_name) is not None:  # {name}: one segment, or URL text for a raw argument
                encode = quote_url_text if arg_name in tool.raw else quote_segment
                url = url.replace("{" + arg_name + "}", encode(_as_text(args[arg_name])))
        pairs: list[tuple[str, str]] = []
        for arg_name, *_ in tool.by_position["query"]:
            value = args.get(arg_name)
            if value is None:
                continue
            key = tool.wire.get(arg_name, arg_name)
            if isinstance(value, (list, tuple)):
                pairs.extend((key, _as_text(item)) for item in value)
            else:
                pairs.append((key, _as_text(value)))
        if pairs:
            url += ("&" if "?" in url else "?") + urlencode(pairs)
        if not url.lower().startswith(("http://", "https://")):
            raise _Failed(f"endpoint {url!r} is not an absolute http(s) URL")
        return url

    def _headers(self, tool: _Tool, args: dict[str, Any], context: dict[str, Any], ctx: CallContext) -> dict[str, str]:
        headers: dict[str, str] = {}
        for key, tpl in tool.headers.items():
            value = _render(tpl, context, f"tools[{tool.name}].headers.{key}").strip()
            if value:  # a header whose template renders empty (e.g. an absent client header) is left out
                headers[key] = value
        for arg_name, *_ in tool.by_position["header"]:
            if args.get(arg_name) is not None:
                headers[tool.wire.get(arg_name, arg_name)] = _as_text(args[arg_name]).replace("\r", " ").replace("\n", " ")
        if self.forward_headers:
            present = {k.lower() for k in headers}
            for name in self.forward_headers:
                value = ctx.headers.get(name)
                if value is not None and name not in present:
                    headers[name] = value
        return headers

    def _body(self, tool: _Tool, args: dict[str, Any], context: dict[str, Any], headers: dict[str, str]) -> bytes | None:
        by_position = tool.by_position
        if not headers and tool.request_body is None and not (by_position["body"] or by_position["file"]
                                                              or by_position["form-data"]):
            return None  # no argument goes in a body, and no Content-Type header asks for an (empty) form
        has_type = any(k.lower() == "content-type" for k in headers)
        # A Content-Type header chooses the form's encoding: multipart/form-data even with no file; any other
        # type (application/octet-stream, image/png) with a file argument sends that file alone as the body.
        media = next((v for k, v in headers.items() if k.lower() == "content-type"), "").split(";")[0].strip().lower()
        wire = tool.wire
        files = [(arg_name, args[arg_name]) for arg_name, *_ in tool.by_position["file"]
                 if args.get(arg_name) is not None]
        form = [(wire.get(arg_name, arg_name), args[arg_name]) for arg_name, *_ in tool.by_position["form-data"]
                if args.get(arg_name) is not None]
        if tool.request_body is not None:
            text = _render(tool.request_body, context, f"tools[{tool.name}].requestBody")
            if not has_type:
                headers["Content-Type"] = "application/json"
            return text.encode("utf-8")
        if files and has_type and media not in ("multipart/form-data", "application/x-www-form-urlencoded"):
            value = files[0][1]
            return _file_part(files[0][0], value[0] if isinstance(value, list) and value else value)[1]
        if files or media == "multipart/form-data":
            parts = []
            for arg_name, value in files:
                for item in value if isinstance(value, list) else [value]:
                    parts.append((wire.get(arg_name, arg_name), *_file_part(arg_name, item)))
            fields = [(k, _as_text(v)) for k, v in form]
            fields += [(wire.get(arg_name, arg_name), _as_text(args[arg_name]))
                       for arg_name, *_ in tool.by_position["body"] if args.get(arg_name) is not None]
            body, kind = _multipart(fields, parts)
            for key in [k for k in headers if k.lower() == "content-type"]:
                del headers[key]
            headers["Content-Type"] = kind
            return body
        if form:
            if not has_type:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            return urlencode([(k, _as_text(v)) for k, v in form]).encode("ascii")
        body_args = {wire.get(arg_name, arg_name): args[arg_name] for arg_name, *_ in tool.by_position["body"]
                     if arg_name in args}
        if body_args:
            if not has_type:
                headers["Content-Type"] = "application/json"
            return json.dumps(body_args, ensure_ascii=False).encode("utf-8")
        return None

    def _literal_authorities(self, content: Any, config: Mapping[str, Any], tools: list[Tool],
                             ) -> frozenset[Authority]:
        """The authorities this server's tools may reach when they are loopback/private.

        Those written in the document (its destination texts, this server's ``config``
        and every tool's endpoint), plus those the document renders by itself at build
        time: ``config`` values (``env()`` included: the operator's environment is the
        operator's) and endpoints rendered with no arguments and no client request data.
        """
        from mcpgw_sdk.templates import request_context

        texts = document_texts(content) + [str(v) for v in config.values()] + \
            [t.endpoint for t in tools]
        found = set(authorities(texts))
        context: dict[str, Any] = {"args": {}, "request": request_context(None, None, None), "config": {}}
        try:
            rendered = {key: _render(tpl, context, key) for key, tpl in self.config.items()}
        except _Failed:
            rendered = {}
        found |= authorities(rendered.values())
        context["config"] = rendered
        for tool in map(self._tool, self._specs):
            try:
                url = _render(tool.endpoint, context, "endpoint").strip()
            except _Failed:
                continue
            parts = urlsplit(url)
            authority = url_authority(url)
            # "http://host:{{ args.port }}" renders an empty port here: that is not the document's port 80.
            if authority is not None and not parts.netloc.endswith(":"):
                found.add(authority)
        return frozenset(found)


def result_text(result: dict[str, Any]) -> str:
    """The text of a result's first text item (handy in notebooks and tests)."""
    for item in result.get("content") or []:
        if item.get("type") == "text":
            return item["text"]
    return ""


__all__ = ["RestServer", "result_text"]
