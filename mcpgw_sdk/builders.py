"""Fluent builders for config documents: edit in memory, persist only on ``save()``.

Every builder wraps a plain dict inside the document's content, so what you
build is exactly the YAML that gets stored:

>>> doc = DocumentBuilder("users", tenant="default")
>>> doc.rest_server("users", config={"base": "http://127.0.0.1:5236"})  # doctest: +ELLIPSIS
<RestServerBuilder 'users'>
>>> t = doc.tool("get_user", description="Get a user").get("{{ config.base }}/users/{{ args.email }}")
>>> t.arg("email", position="path", required=True)  # doctest: +ELLIPSIS
<ToolBuilder 'get_user' GET ...>
>>> doc.content["servers"][0]["allowedTools"]
['get_user']
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import config_model
from .config_model import MCP_TYPES, METHODS, POSITIONS
from .errors import ConfigError, ConflictError, NotFound

if TYPE_CHECKING:
    from .records import Document
    from .store import ConfigStore

ARG_POSITIONS = POSITIONS
HTTP_METHODS = METHODS


def _find(items: list[dict[str, Any]], name: str, key: str = "name") -> dict[str, Any] | None:
    for item in items:
        if item.get(key) == name:
            return item
    return None


class _Part:
    """Base of the builders of one part of a document (a tool, a server, …)."""

    kind = "part"

    def __init__(self, doc: DocumentBuilder, data: dict[str, Any]):
        self.doc = doc
        self.data = data

    @property
    def name(self) -> str:
        """The part's name (a router's prefix)."""
        return self.data.get("name", "")

    def set(self, **fields: Any) -> _Part:
        """Set raw fields of the underlying dict (``None`` removes a field); returns the builder.

        >>> doc = DocumentBuilder("d")
        >>> doc.tool("t").set(timeout=5).data["timeout"]
        5
        """
        for key, value in fields.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        return self

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class ToolBuilder(_Part):
    """A REST tool: HTTP method, endpoint template, headers, arguments, request and response templates.

    >>> doc = DocumentBuilder("d")
    >>> t = doc.tool("create_user").post("{{ config.base }}/users").header("Content-Type", "application/json")
    >>> t.arg("email", position="body", required=True).body('{"email": "{{ args.email }}"}')  # doctest: +ELLIPSIS
    <ToolBuilder 'create_user' POST ...>
    """

    kind = "tool"

    def request(self, method: str, endpoint: str) -> ToolBuilder:
        """Set the HTTP method and the endpoint template (Jinja2: ``{{ config.base }}/users/{{ args.id }}``)."""
        method = method.upper()
        if method not in HTTP_METHODS:
            raise ConfigError(f"tools[{self.name}].method: {method!r} is not one of {', '.join(HTTP_METHODS)}")
        self.data["method"] = method
        self.data["endpoint"] = endpoint
        return self

    def get(self, endpoint: str) -> ToolBuilder:
        """Call ``endpoint`` with GET."""
        return self.request("GET", endpoint)

    def post(self, endpoint: str) -> ToolBuilder:
        """Call ``endpoint`` with POST."""
        return self.request("POST", endpoint)

    def put(self, endpoint: str) -> ToolBuilder:
        """Call ``endpoint`` with PUT."""
        return self.request("PUT", endpoint)

    def patch(self, endpoint: str) -> ToolBuilder:
        """Call ``endpoint`` with PATCH."""
        return self.request("PATCH", endpoint)

    def delete(self, endpoint: str) -> ToolBuilder:
        """Call ``endpoint`` with DELETE."""
        return self.request("DELETE", endpoint)

    def describe(self, description: str) -> ToolBuilder:
        """Set the description clients show to the model."""
        self.data["description"] = description
        return self

    def header(self, name: str, value: str) -> ToolBuilder:
        """Send header ``name`` with ``value`` (a template, e.g. ``Bearer {{ config.token }}``)."""
        self.data.setdefault("headers", {})[name] = value
        return self

    def arg(self, name: str, *, position: str = "query",
            required: bool = config_model.default(config_model.Arg, "required"),
            type: str = config_model.default(config_model.Arg, "type"), description: str = "", default: Any = None, items: dict[str, Any] | None = None,
            enum: Iterable[Any] | None = None, raw: bool = False) -> ToolBuilder:
        """Add or replace argument ``name``.

        ``position`` is where it goes: header, query, path, body, form-data or file.
        ``type`` is a JSON-schema type; ``default`` is stored as text (arrays and
        objects as JSON), the way the document format keeps it. ``raw=True`` inserts
        the value into the endpoint as URL text, its ``/`` kept (a file path), instead of
        one percent-encoded segment (docs/rest-tools.md, "The URL").

        >>> DocumentBuilder("d").tool("t").arg("n", type="integer", default=3).data["args"][0]["default"]
        '3'
        """
        if position not in ARG_POSITIONS:
            raise ConfigError(f"tools[{self.name}].args[{name}].position: {position!r} is not one of "
                              f"{', '.join(ARG_POSITIONS)}")
        arg: dict[str, Any] = {"name": name, "position": position, "required": bool(required), "type": type}
        if description:
            arg["description"] = description
        if default is not None:
            arg["default"] = _default_text(default)
        if items is not None:
            arg["items"] = dict(items)
        if enum is not None:
            arg.setdefault("items", {})["enum"] = list(enum)
        if raw:
            arg["raw"] = True
        args = self.data.setdefault("args", [])
        existing = _find(args, name)
        if existing is not None:
            args[args.index(existing)] = arg
        else:
            args.append(arg)
        return self

    def remove_arg(self, name: str) -> ToolBuilder:
        """Remove argument ``name`` (NotFound when there is none)."""
        args = self.data.get("args", [])
        arg = _find(args, name)
        if arg is None:
            raise NotFound(f"tool {self.name!r} has no argument {name!r}")
        args.remove(arg)
        return self

    def body(self, template: str) -> ToolBuilder:
        """Set the request body template (``requestBody``)."""
        self.data["requestBody"] = template
        return self

    def response(self, template: str) -> ToolBuilder:
        """Set the template that turns the backend's answer into the tool's text (``responseBody``)."""
        self.data["responseBody"] = template
        return self

    def annotate(self, **hints: Any) -> ToolBuilder:
        """Set MCP annotations: ``title``, ``readOnlyHint``, ``destructiveHint``, ``idempotentHint``,
        ``openWorldHint``.

        >>> DocumentBuilder("d").tool("t").annotate(readOnlyHint=True).data["annotations"]
        {'readOnlyHint': True}
        """
        self.data.setdefault("annotations", {}).update(hints)
        return self

    def output_schema(self, schema: dict[str, Any]) -> ToolBuilder:
        """Declare the JSON schema of the structured result (``outputSchema``)."""
        self.data["outputSchema"] = schema
        return self

    def timeout(self, seconds: float) -> ToolBuilder:
        """Set the call timeout in seconds."""
        self.data["timeout"] = seconds
        return self

    def __repr__(self) -> str:
        return f"<ToolBuilder {self.name!r} {self.data.get('method', '?')} {self.data.get('endpoint', '')}>"

    def _repr_html_(self) -> str:
        from .display import tool_html

        return tool_html(self.data, tenant=self.doc.tenant, document=self.doc.name)


def _default_text(value: Any) -> str:
    import json

    if isinstance(value, str):
        return value
    return json.dumps(value)


def _token_exchange(data: dict[str, Any], token_endpoint: str, *, client_id: str | None, client_secret: str | None,
                    audience: str | list[str] | None, resource: str | list[str] | None,
                    scope: str | list[str] | None, header: str | None, scheme: str | None) -> None:
    block: dict[str, Any] = {"tokenEndpoint": token_endpoint}
    for key, value in (("clientId", client_id), ("clientSecret", client_secret), ("audience", audience),
                       ("resource", resource), ("scope", scope), ("header", header), ("scheme", scheme)):
        if value is not None:
            block[key] = value
    data["tokenExchange"] = block


class RestServerBuilder(_Part):
    """A REST server: a ``config`` map (templates) and the tools it exposes (``allowedTools``)."""

    kind = "server"

    def config(self, **values: str) -> RestServerBuilder:
        """Set entries of the server's ``config`` map (seen as ``config.*`` in templates)."""
        self.data.setdefault("config", {}).update(values)
        return self

    def allow(self, *tools: str) -> RestServerBuilder:
        """Expose these tools through this server (appends to ``allowedTools``)."""
        allowed = self.data.setdefault("allowedTools", [])
        for tool in tools:
            if tool not in allowed:
                allowed.append(tool)
        return self

    def token_exchange(self, token_endpoint: str, *, client_id: str | None = None, client_secret: str | None = None,
                       audience: str | list[str] | None = None, resource: str | list[str] | None = None,
                       scope: str | list[str] | None = None, header: str | None = None,
                       scheme: str | None = None) -> RestServerBuilder:
        """Send the backend a token exchanged for the caller's OAuth token (RFC 8693; docs/token-exchange.md).

        ``client_secret`` is a template reading ``env()`` (never the secret itself), e.g.
        ``'{{ env("API_CLIENT_SECRET") }}'``; the routers serving this server must use ``oauth2``.

        >>> d = DocumentBuilder("d")
        >>> d.rest_server("api").token_exchange("https://as.example/token", audience="api").data["tokenExchange"]
        {'tokenEndpoint': 'https://as.example/token', 'audience': 'api'}
        """
        _token_exchange(self.data, token_endpoint, client_id=client_id, client_secret=client_secret,
                        audience=audience, resource=resource, scope=scope, header=header, scheme=scheme)
        return self

    def _repr_html_(self) -> str:
        from .display import server_html

        return server_html(self.data, kind="rest", tenant=self.doc.tenant, document=self.doc.name)


class McpServerBuilder(_Part):
    """An upstream MCP server (stdio, SSE or Streamable HTTP) proxied by the gateway."""

    kind = "mcp"

    def allow(self, *tools: str) -> McpServerBuilder:
        """Expose only these upstream tools (``allowedTools``)."""
        self.data["allowedTools"] = list(tools)
        return self

    def deny(self, *tools: str) -> McpServerBuilder:
        """Hide these upstream tools (``deniedTools``)."""
        self.data["deniedTools"] = list(tools)
        return self

    def token_exchange(self, token_endpoint: str, *, client_id: str | None = None, client_secret: str | None = None,
                       audience: str | list[str] | None = None, resource: str | list[str] | None = None,
                       scope: str | list[str] | None = None, header: str | None = None,
                       scheme: str | None = None) -> McpServerBuilder:
        """Send the backend a token exchanged for the caller's OAuth token (RFC 8693; docs/token-exchange.md).

        ``client_secret`` is a template reading ``env()`` (never the secret itself), e.g.
        ``'{{ env("API_CLIENT_SECRET") }}'``; the routers serving this server must use ``oauth2``.

        >>> d = DocumentBuilder("d")
        >>> d.mcp_server("api", type="streamable-http", url="https://api.example/mcp").token_exchange("https://as.example/token", audience="api").data["tokenExchange"]
        {'tokenEndpoint': 'https://as.example/token', 'audience': 'api'}
        """
        _token_exchange(self.data, token_endpoint, client_id=client_id, client_secret=client_secret,
                        audience=audience, resource=resource, scope=scope, header=header, scheme=scheme)
        return self

    def _repr_html_(self) -> str:
        from .display import server_html

        return server_html(self.data, kind="mcp", tenant=self.doc.tenant, document=self.doc.name)


class RouterBuilder(_Part):
    """A router: the URL prefix clients connect to and the server it serves, with CORS, auth and an off switch."""

    kind = "router"

    @property
    def name(self) -> str:
        """The router's prefix."""
        return self.data.get("prefix", "")

    def cors(self, *, allow_origins: Iterable[str] = ("*",), allow_methods: Iterable[str] | None = None,
             allow_headers: Iterable[str] | None = None, expose_headers: Iterable[str] | None = None,
             allow_credentials: bool | None = None) -> RouterBuilder:
        """Set the router's CORS policy (``allowOrigins`` etc.)."""
        cors: dict[str, Any] = {"allowOrigins": list(allow_origins)}
        for key, value in (("allowMethods", allow_methods), ("allowHeaders", allow_headers),
                           ("exposeHeaders", expose_headers)):
            if value is not None:
                cors[key] = list(value)
        if allow_credentials is not None:
            cors["allowCredentials"] = allow_credentials
        self.data["cors"] = cors
        return self

    def auth(self, mode: str) -> RouterBuilder:
        """Set the auth mode: ``apikey``, ``oauth2`` or ``none``."""
        self.data["auth"] = {"mode": mode}
        return self

    def disable(self) -> RouterBuilder:
        """Stop serving this prefix once saved (``disabled: true``); the prefix stays reserved.

        Gateways answer 404 on it within one poll and end its open sessions; :meth:`enable` undoes it.

        >>> DocumentBuilder("d").router("/default/d", server="d").disable().data["disabled"]
        True
        """
        self.data["disabled"] = True
        return self

    def enable(self) -> RouterBuilder:
        """Serve this prefix again once saved (removes ``disabled``).

        >>> "disabled" in DocumentBuilder("d").router("/default/d", server="d").disable().enable().data
        False
        """
        self.data.pop("disabled", None)
        return self

    @property
    def disabled(self) -> bool:
        """Whether the router is marked ``disabled: true``."""
        return self.data.get("disabled") is True

    def shape(self, tool: str, *, name: str | None = None, title: str | None = None,
              description: str | None = None, hidden: bool | None = None,
              arguments: dict[str, dict[str, Any]] | None = None, **annotations: Any) -> RouterBuilder:
        """Reshape one tool this router exposes (``routers[].tools``; docs/tool-shaping.md).

        ``tool`` is the name the router would expose (after ``toolPrefix``). ``arguments`` maps an
        argument to ``description``, ``default`` or ``fixed`` (hidden from clients, always sent);
        keyword annotations (``readOnlyHint=True`` …) are added or overridden. Calling it again for
        the same tool updates what it names.

        >>> r = DocumentBuilder("d").router("/default/d", server="gh")
        >>> r.shape("search_issues", name="find_issues", arguments={"org": {"fixed": "acme"}},
        ...         readOnlyHint=True).data["tools"]["search_issues"]["annotations"]
        {'readOnlyHint': True}
        """
        shape = self.data.setdefault("tools", {}).setdefault(tool, {})
        for key, value in (("name", name), ("title", title), ("description", description), ("hidden", hidden)):
            if value is not None:
                shape[key] = value
        if arguments:
            shape.setdefault("arguments", {}).update(copy.deepcopy(arguments))
        if annotations:
            shape.setdefault("annotations", {}).update(annotations)
        return self

    def hide(self, *tools: str) -> RouterBuilder:
        """Hide these tools from this router's clients (``routers[].tools.<name>.hidden``)."""
        for tool in tools:
            self.shape(tool, hidden=True)
        return self


class PromptBuilder(_Part):
    """A prompt: arguments and messages (``{name}`` in a text is replaced by the argument)."""

    kind = "prompt"

    def message(self, text: str, *, role: str = "user") -> PromptBuilder:
        """Append a message to ``promptResponse``."""
        self.data.setdefault("promptResponse", []).append({"role": role, "content": {"type": "text", "text": text}})
        return self


class DocumentBuilder:
    """A config document being edited: build it fluently, then ``save()`` it.

    Obtain one with ``Workspace.document(name, tenant=...)`` (new or existing) or
    ``Workspace.get(tenant, name)`` (existing). ``version`` is the stored version
    it was loaded from (``None`` when new); ``save()`` refuses to overwrite a
    version saved meanwhile by someone else (ConflictError).

    >>> doc = DocumentBuilder("users", tenant="default")
    >>> doc.router("/default/users", server="users")  # doctest: +ELLIPSIS
    <RouterBuilder '/default/users'>
    >>> doc.content["routers"]
    [{'server': 'users', 'prefix': '/default/users'}]
    """

    def __init__(self, name: str, *, tenant: str = config_model.DEFAULT_TENANT, content: dict[str, Any] | None = None,
                 version: int | None = None, store: ConfigStore | None = None, author: str | None = None,
                 record: Document | None = None):
        if content is None:
            content = {"name": name, "tenant": tenant}
        self.content: dict[str, Any] = content
        self.version = version
        self.record = record
        self._store = store
        self._author = author

    @classmethod
    def from_record(cls, record: Document, *, store: ConfigStore | None = None, author: str | None = None
                    ) -> DocumentBuilder:
        """A builder editing a copy of a stored document."""
        return cls(record.name, tenant=record.tenant, content=copy.deepcopy(record.content),
                   version=record.version, store=store, author=author, record=record)

    # -- identity ----------------------------------------------------------
    @property
    def name(self) -> str:
        """The document's name."""
        return self.content.get("name", "")

    @property
    def tenant(self) -> str:
        """The tenant the document belongs to."""
        return self.content.get("tenant", "")

    def _list(self, key: str) -> list[dict[str, Any]]:
        return self.content.setdefault(key, [])

    # -- parts ---------------------------------------------------------------
    def rest_server(self, name: str, *, config: dict[str, str] | None = None, description: str | None = None,
                    allowed_tools: Iterable[str] | None = None) -> RestServerBuilder:
        """Add (or return, updating the given fields) the REST server ``name``.

        >>> DocumentBuilder("d").rest_server("api", config={"base": "http://x"}).data["config"]
        {'base': 'http://x'}
        """
        data = _find(self._list("servers"), name)
        if data is None:
            data = {"name": name, "allowedTools": []}
            self.content["servers"].append(data)
        if description is not None:
            data["description"] = description
        if config is not None:
            data.setdefault("config", {}).update(config)
        builder = RestServerBuilder(self, data)
        if allowed_tools is not None:
            data["allowedTools"] = []
            builder.allow(*allowed_tools)
        return builder

    def tool(self, name: str, *, description: str | None = None, server: str | None = None) -> ToolBuilder:
        """Add (or return) the REST tool ``name`` and expose it through ``server``.

        ``server`` defaults to the document's only REST server, when it has
        exactly one; the tool is appended to that server's ``allowedTools``.

        >>> doc = DocumentBuilder("d"); _ = doc.rest_server("api")
        >>> doc.tool("ping", description="Ping").get("http://x/ping").data["method"]
        'GET'
        """
        data = _find(self._list("tools"), name)
        if data is None:
            data = {"name": name}
            self.content["tools"].append(data)
            servers = self.content.get("servers", [])
            target = None
            if server is not None:
                target = _find(servers, server)
                if target is None:
                    raise NotFound(f"{self.tenant}/{self.name} has no REST server {server!r}")
            elif len(servers) == 1:
                target = servers[0]
            if target is not None:
                RestServerBuilder(self, target).allow(name)
        elif server is not None:
            self.rest_server(server).allow(name)
        if description is not None:
            data["description"] = description
        return ToolBuilder(self, data)

    def router(self, prefix: str, *, server: str | None = None, cors: dict[str, Any] | None = None,
               auth: dict[str, Any] | str | None = None, sse_prefix: str | None = None) -> RouterBuilder:
        """Serve ``server`` at ``prefix`` (``/tenant/...``); ``auth`` may be a mode string such as ``"apikey"``.

        Without ``server``, the existing router at ``prefix`` (to shape its tools, say); a new one needs it.
        """
        data = _find(self._list("routers"), prefix, key="prefix")
        if data is None:
            if server is None:
                raise ConfigError(f"{self.tenant}/{self.name}: no router {prefix!r} yet; pass server= to add one")
            data = {"server": server, "prefix": prefix}
            self.content["routers"].append(data)
        if server is not None:
            data.pop("servers", None)
            data["server"] = server
        if cors is not None:
            data["cors"] = dict(cors)
        if auth is not None:
            data["auth"] = {"mode": auth} if isinstance(auth, str) else dict(auth)
        if sse_prefix is not None:
            data["ssePrefix"] = sse_prefix
        return RouterBuilder(self, data)

    def prompt(self, name: str, *, text: str | None = None, arguments: Iterable[str | dict[str, Any]] = (),
               description: str | None = None, role: str = "user") -> PromptBuilder:
        """Add (or replace) prompt ``name``; ``{arg}`` in ``text`` is replaced by the argument.

        >>> p = DocumentBuilder("d").prompt("greet", text="Say hi to {name}", arguments=["name"])
        >>> p.data["arguments"]
        [{'name': 'name', 'required': True}]
        """
        prompts = self._list("prompts")
        data: dict[str, Any] = {"name": name}
        if description is not None:
            data["description"] = description
        args = []
        for arg in arguments:
            args.append({"name": arg, "required": True} if isinstance(arg, str) else dict(arg))
        if args:
            data["arguments"] = args
        existing = _find(prompts, name)
        if existing is not None:
            prompts[prompts.index(existing)] = data
        else:
            prompts.append(data)
        builder = PromptBuilder(self, data)
        if text is not None:
            builder.message(text, role=role)
        return builder

    def mcp_server(self, name: str, *, type: str = "stdio", command: str | None = None,
                   args: Iterable[str] | None = None, env: dict[str, str] | None = None, url: str | None = None,
                   headers: dict[str, str] | None = None, policy: str | None = None,
                   tool_prefix: str | None = None) -> McpServerBuilder:
        """Add (or replace) the upstream MCP server ``name``: ``type`` stdio (``command``/``args``/``env``),
        sse or streamable-http (``url``/``headers``).

        >>> DocumentBuilder("d").mcp_server("everything", command="npx", args=["-y", "x"]).data["type"]
        'stdio'
        """
        if type not in MCP_TYPES:
            raise ConfigError(f"mcpServers[{name}].type: {type!r} is not one of {', '.join(MCP_TYPES)}")
        data: dict[str, Any] = {"name": name, "type": type}
        for key, value in (("command", command), ("url", url), ("policy", policy), ("toolPrefix", tool_prefix)):
            if value is not None:
                data[key] = value
        if args is not None:
            data["args"] = list(args)
        if env is not None:
            data["env"] = dict(env)
        if headers is not None:
            data["headers"] = dict(headers)
        servers = self._list("mcpServers")
        existing = _find(servers, name)
        if existing is not None:
            servers[servers.index(existing)] = data
        else:
            servers.append(data)
        return McpServerBuilder(self, data)

    def remove(self, kind: str, name: str) -> DocumentBuilder:
        """Remove a part: ``kind`` is tool, server, mcp_server, router (by prefix) or prompt.

        Removing a tool also takes it out of every server's ``allowedTools``.
        """
        keys = {"tool": ("tools", "name"), "server": ("servers", "name"), "mcp_server": ("mcpServers", "name"),
                "router": ("routers", "prefix"), "prompt": ("prompts", "name")}
        if kind not in keys:
            raise ValueError(f"kind: {kind!r} is not one of {', '.join(keys)}")
        key, field = keys[kind]
        items = self.content.get(key, [])
        item = _find(items, name, key=field)
        if item is None:
            raise NotFound(f"{self.tenant}/{self.name} has no {kind} {name!r}")
        items.remove(item)
        if kind == "tool":
            for server in self.content.get("servers", []):
                if name in server.get("allowedTools", []):
                    server["allowedTools"].remove(name)
        return self

    # -- checking and saving -------------------------------------------------
    def problems(self) -> list[str]:
        """Every validation problem of the document (empty when it is valid), each ``tenant/name: path: reason``.

        The result's ``warnings`` (a :class:`~mcpgw_sdk.documents.Problems`) list what is valid but fails
        when used, as ``gw.check()`` and ``mcpgw check`` report them.
        """
        from . import documents

        try:
            documents.validate(self.content)
        except ConfigError as exc:
            return documents.Problems(exc.errors, warnings=documents.warnings(self.content))
        return documents.Problems(warnings=documents.warnings(self.content))

    def validate(self) -> DocumentBuilder:
        """Raise ConfigError listing every problem; return the builder when valid."""
        problems = self.problems()
        if problems:
            raise ConfigError(f"{self.tenant}/{self.name} is invalid", problems)
        return self

    def to_yaml(self) -> str:
        """The document as YAML, the way it is stored and exported."""
        from . import documents

        return documents.to_yaml(self.content)

    def save(self, *, author: str | None = None) -> DocumentBuilder:
        """Validate and store the document as a new version; return the builder (now at that version).

        Raises ConflictError when someone saved the document after it was loaded
        (reload with ``Workspace.get`` and apply the change again), ConfigError when invalid.
        """
        if self._store is None:
            raise ConfigError(f"{self.tenant}/{self.name}: not attached to a store (use Workspace.document)")
        author = author if author is not None else self._author
        if self.version is None:
            try:
                record = self._store.create_document(self.content, author=author)
            except ConflictError as exc:
                raise ConflictError(f"{self.tenant}/{self.name} was created by someone else meanwhile; "
                                    f"load it with get() and apply your change again",
                                    base_version=None, current_version=exc.current_version) from None
        else:
            record = self._store.save_document(self.content, author=author, base_version=self.version)
        # Keep editing the same dicts: part builders the user holds stay attached.
        self.record = record
        self.version = record.version
        return self

    def __repr__(self) -> str:
        state = f"v{self.version}" if self.version is not None else "unsaved"
        return f"<DocumentBuilder {self.tenant}/{self.name} {state}>"

    def _repr_html_(self) -> str:
        from .display import document_html

        return document_html(self.content, version=self.version)
