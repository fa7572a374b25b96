"""Immutable routing tables built from one config revision.

A :class:`Snapshot` maps each served prefix to a :class:`Route` (its backends,
visible tools, prompts, CORS and auth blocks). Requests read the snapshot once;
the reloader swaps a new one in with one assignment. :func:`build_snapshot`
validates each document on its own: a broken document keeps the version that
last built, the others reload. Backends are reused across snapshots while their
definition is unchanged.

A router marked ``disabled: true`` gets no route: its prefix is recorded in
``Snapshot.disabled`` (so the gateway can say why it answers 404 and keep the
prefix reserved), and backends that only disabled routers use are not built, so
the reloader retires them like those of a removed router.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from jsonschema import Draft202012Validator

from mcpgw_sdk.config_model import Auth, Cache, Cors, McpServer, RestServer, Router, Shape, default
from mcpgw_sdk.documents import TOOL_NAME_RE, disabled_prefixes, tool_prefix, validate
from mcpgw_sdk.errors import ConfigError

from .backends import make_backend
from .shaping import shape

log = logging.getLogger("mcpgw.gateway")
_NO_AUTH = default(Auth, "mode")


class ToolEntry:
    """A tool as a route exposes it: visible name, descriptor, backend and backend-side name.

    ``fixed``: arguments a router's tool shaping fixed (hidden from the client, always sent).
    """

    __slots__ = ("name", "descriptor", "backend", "backend_name", "server", "fixed", "_validator", "_defaults",
                 "_fast")

    def __init__(self, name: str, descriptor: dict[str, Any], backend: Any, backend_name: str, server: str,
                 fixed: dict[str, Any] | None = None):
        self.name = name
        self.fixed = fixed or {}
        self.descriptor = descriptor
        self.backend = backend
        self.backend_name = backend_name
        self.server = server
        self._validator: Any = None
        self._defaults: dict[str, Any] | None = None
        self._fast: Any = False  # False: not compiled yet; None: no fast path for this schema

    def surely_valid(self, arguments: dict[str, Any]) -> bool:
        """A quick check that is only ever ``True`` for valid arguments (``False``: ask the full validator)."""
        fast = self._fast
        if fast is False:
            fast = self._fast = _fast_check(self.descriptor.get("inputSchema") or {"type": "object"})
        return fast is not None and fast(arguments)

    @property
    def validator(self) -> Any:
        """A cached jsonschema validator of the tool's ``inputSchema``."""
        if self._validator is None:
            schema = self.descriptor.get("inputSchema") or {"type": "object"}
            cls = Draft202012Validator
            try:
                cls.check_schema(schema)
            except Exception:  # noqa: BLE001 - a broken schema must not stop calls; validate nothing
                schema = {"type": "object"}
            self._validator = cls(schema)
        return self._validator

    @property
    def defaults(self) -> dict[str, Any]:
        """Top-level argument defaults declared by the ``inputSchema``."""
        if self._defaults is None:
            props = (self.descriptor.get("inputSchema") or {}).get("properties") or {}
            self._defaults = {k: v["default"] for k, v in props.items() if isinstance(v, dict) and "default" in v}
        return self._defaults


_SIMPLE_TYPES = {"string": (str,), "boolean": (bool,), "integer": (int,), "number": (int, float)}
_INERT = frozenset({"description", "title", "default", "examples", "deprecated", "readOnly", "writeOnly"})


def _fast_check(schema: dict[str, Any]) -> Any:
    """A checker for flat object schemas of scalar properties (what most REST tools declare), else ``None``.

    Sound but incomplete: anything unusual (arrays, nested objects, formats, patterns, ``1.0`` for an
    integer) makes it answer ``False`` so the full jsonschema validator decides.
    """
    if not isinstance(schema, dict) or set(schema) - _INERT - {"type", "properties", "required", "$schema"}:
        return None
    if schema.get("type", "object") != "object":
        return None
    required = tuple(schema.get("required") or ())
    props: dict[str, tuple[type, ...]] = {}
    enums: dict[str, tuple] = {}
    for name, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict) or set(prop) - _INERT - {"type", "enum"}:
            return None
        kind = prop.get("type")
        kinds = _SIMPLE_TYPES.get(kind) if isinstance(kind, str) else None  # ["string", "null"]: the full validator
        if kinds is None:
            return None
        props[name] = kinds
        if "enum" in prop:
            if not isinstance(prop["enum"], list) or not all(isinstance(v, str) for v in prop["enum"]):
                return None
            enums[name] = tuple(prop["enum"])
    items = props.items()

    def check(arguments: dict[str, Any]) -> bool:
        for name in required:
            if name not in arguments:
                return False
        for name, kinds in items:
            if name in arguments:
                value = arguments[name]
                if type(value) not in kinds:  # exact types: bool is not an integer here
                    return False
                if name in enums and value not in enums[name]:
                    return False
        return True

    return check


@dataclass(frozen=True)
class Route:
    """What one prefix serves."""

    prefix: str
    tenant: str
    document: str  # "tenant/name"
    servers: tuple[str, ...]
    backends: tuple[Any, ...]
    tools: dict[str, ToolEntry]
    tool_list: tuple[dict[str, Any], ...]
    prompts: dict[str, dict[str, Any]]
    cors: Cors | None
    auth: Auth | None
    sse_prefix: str
    digest: str  # changes when the visible tool list changes
    hidden: tuple[str, ...] = ()  # why upstream tools are not served (name collisions, invalid names)
    cache: Cache = Cache()  # routers[].cache: ttlMs/readTtlMs of modern-era cache hints
    #: The router as the model reads it.
    router: Router | None = field(default=None, compare=False, repr=False)
    _by_version: dict[str, list] = field(default_factory=dict, compare=False, repr=False)
    #: What the core derives once per route (per snapshot): modern capabilities, whether it may notify, …
    _memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def auth_mode(self) -> str:
        """``routers[].auth.mode`` (``none`` without an auth block)."""
        return self.router.mode if self.router is not None else _NO_AUTH


@dataclass(frozen=True)
class Snapshot:
    """Everything one revision serves. Never mutated after it is built."""

    revision: int
    routes: dict[str, Route]
    errors: dict[str, list[str]]
    loaded_at: float
    documents: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # key -> (hash, content)
    backends: dict[str, Any] = field(default_factory=dict)  # definition hash -> backend
    keys: tuple = ()
    tenants: tuple = ()
    disabled: dict[str, str] = field(default_factory=dict)  # prefix of a disabled router -> its document key
    #: document key -> (version, content) as stored (the same version stored the same is not validated again)
    sources: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    #: document key -> the definition hashes of the backends it built (an unchanged document reuses its routes)
    built: dict[str, tuple[str, ...]] = field(default_factory=dict)


EMPTY = Snapshot(revision=-1, routes={}, errors={}, loaded_at=0.0)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _local_digest(obj: Any) -> str:
    """A digest of JSON-shaped ``obj`` that only this process compares (a backend's definition): its ``repr``,
    about three times cheaper than canonical JSON. Key order counts, which is fixed by the stored text."""
    return hashlib.sha256(repr(obj).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _backend_definitions(content: dict[str, Any], key: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """server name -> (definition hash, kind, make_backend kwargs)."""
    defs: dict[str, tuple[str, str, dict[str, Any]]] = {}
    tools = content.get("tools") or []
    # Backends trust the authorities written anywhere in the document: a change there rebuilds them.
    from .backends.guard import document_texts

    literals = sorted(document_texts(content))
    for server in content.get("servers") or []:
        entry = RestServer.from_dict(server)
        allowed, denied = entry.allowed_tools, set(entry.denied_tools)
        chosen = [t for t in tools if (allowed is None or t.get("name") in allowed) and t.get("name") not in denied]
        kwargs = {"name": entry.name, "server": server, "tools": chosen, "document": content}
        defs[entry.name] = (_local_digest(["rest", key, server, chosen, literals]), "rest", kwargs)
    for server in content.get("mcpServers") or []:
        upstream = McpServer.from_dict(server)
        kwargs = {"name": upstream.name, "server": server, "document": content}
        stdio = upstream.type == "stdio"
        defs[upstream.name] = (_local_digest(["mcp", key, server, [] if stdio else literals]), "mcp", kwargs)
    return defs


def _tool_name(server: dict[str, Any] | None, tool: dict[str, Any], aggregated: bool) -> str:
    # The validator's own rule (toolPrefix, "" turns it off; else "<server>_" when aggregating), so the names
    # clients see are the names validation checked.
    return tool_prefix(server or {}, aggregated) + tool["name"]


def build_snapshot(config_set: Any, previous: Snapshot | None = None, *,
                   make: Callable[..., Any] = make_backend) -> Snapshot:
    """Build the snapshot of ``config_set`` (a :class:`~mcpgw_sdk.records.ConfigSet`).

    A document that fails validation, or whose backends fail to build, keeps its
    version from ``previous`` (when there is one) and is listed in ``errors``.

    The cyclic garbage collector is paused while it runs: a build allocates many long-lived
    objects (a big catalog: hundreds of thousands), and the collections they would trigger, each
    scanning the whole growing heap, cost about a third of the build. Nothing it makes is garbage.
    """
    paused = gc.isenabled()
    if paused:
        gc.disable()
    try:
        return _build_snapshot(config_set, previous, make)
    finally:
        if paused:
            gc.enable()


def _build_snapshot(config_set: Any, previous: Snapshot | None, make: Callable[..., Any]) -> Snapshot:
    previous = previous or EMPTY
    errors: dict[str, list[str]] = {}
    documents: dict[str, tuple[str, dict[str, Any]]] = {}
    sources: dict[str, Any] = {}
    for doc in config_set.documents:
        if getattr(doc, "deleted", False):
            continue
        key = f"{doc.tenant}/{doc.name}"
        try:
            if getattr(doc, "problem", ""):
                raise ConfigError(f"{key}: {doc.problem}")
            version = getattr(doc, "version", None)
            before = previous.sources.get(key)
            if before is not None and key not in previous.errors and key in previous.documents \
                    and before[0] == version and (before[1] is doc.content or before[1] == doc.content):
                documents[key] = previous.documents[key]  # the same version, stored the same: validated then
            elif getattr(doc, "checked", ""):  # the store's mark: this validator's own output, byte for byte
                documents[key] = (doc.checked[:16], doc.content)
            else:
                content = validate(doc.content)
                documents[key] = (_digest(content), content)
            sources[key] = (version, doc.content)
        except Exception as exc:  # noqa: BLE001 - whatever is wrong with one document costs only that document
            errors[key] = (list(exc.errors) if isinstance(exc, ConfigError)
                           else [f"{key}: {type(exc).__name__}: {str(exc)[:200]}"])
            if key in previous.documents:
                documents[key] = previous.documents[key]

    backends: dict[str, Any] = {}
    routes: dict[str, Route] = {}
    disabled: dict[str, str] = {}
    built: dict[str, tuple[str, ...]] = {}
    # The previous snapshot by document, built once (not a scan of every route per document).
    old_routes: dict[str, dict[str, Route]] = {}
    for prefix, route in previous.routes.items():
        old_routes.setdefault(route.document, {})[prefix] = route
    old_disabled: dict[str, dict[str, str]] = {}
    for prefix, owner in previous.disabled.items():
        old_disabled.setdefault(owner, {})[prefix] = owner
    for key, (digest, content) in sorted(documents.items()):
        doc_disabled = {p: key for p in disabled_prefixes(content)}
        reused = _unchanged(key, digest, previous, old_routes.get(key, {}))
        try:
            if reused is not None:  # the same document over static backends: the same routes
                doc_routes, doc_backends = reused
            else:
                doc_routes, doc_backends = _build_document(key, content, previous, make)
        except Exception as exc:  # noqa: BLE001 - one document's failure must not stop the others
            errors.setdefault(key, []).append(f"{key}: {type(exc).__name__}: {exc}")
            log.warning("document %s did not build: %s", key, exc)
            doc_routes = old_routes.get(key, {})
            doc_disabled = old_disabled.get(key, {})
            used = {id(b) for r in doc_routes.values() for b in r.backends}
            doc_backends = {d: previous.backends[d] for d in previous.built.get(key, ())
                            if d in previous.backends and id(previous.backends[d]) in used}
        built[key] = tuple(doc_backends)
        # A disabled router keeps its prefix: it claims it like a served one.
        for prefix, route in [*doc_routes.items(), *((p, None) for p in doc_disabled)]:
            owner = routes[prefix].document if prefix in routes else disabled.get(prefix)
            if owner is not None:
                errors.setdefault(key, []).append(f"{key}: routers: prefix {prefix} is already served by {owner}")
            elif route is None:
                disabled[prefix] = key
            else:
                routes[prefix] = route
        backends.update(doc_backends)
    return Snapshot(revision=config_set.revision, routes=routes, errors=errors, loaded_at=time.time(),
                    documents=documents, backends=backends, keys=tuple(getattr(config_set, "keys", ()) or ()),
                    tenants=tuple(getattr(config_set, "tenants", ()) or ()), disabled=disabled, sources=sources,
                    built=built)


def _unchanged(key: str, digest: str, previous: Snapshot,
               doc_routes: dict[str, Route]) -> tuple[dict[str, Route], dict[str, Any]] | None:
    """The routes and backends ``previous`` built from the same document, when they can be reused as they are:
    the document's validated content is the same, it built without errors, and every backend is static
    (REST: what it offers is fixed by the document; an upstream's tools may have changed since)."""
    old = previous.documents.get(key)
    digests = previous.built.get(key)
    if old is None or old[0] != digest or digests is None or key in previous.errors:
        return None
    doc_backends = {d: previous.backends[d] for d in digests if d in previous.backends}
    if len(doc_backends) != len(digests) or \
            not all(getattr(b, "static_capabilities", False) for b in doc_backends.values()):
        return None
    return doc_routes, doc_backends


def retired_backends(old: Snapshot, new: Snapshot) -> list[Any]:
    """Backends of ``old`` that ``new`` no longer uses (to be closed once in-flight calls finish)."""
    keep = {id(b) for b in new.backends.values()}
    return [b for b in old.backends.values() if id(b) not in keep]


def _build_document(key: str, content: dict[str, Any], previous: Snapshot,
                    make: Callable[..., Any]) -> tuple[dict[str, Route], dict[str, Any]]:
    defs = _backend_definitions(content, key)
    routers = [Router.from_dict(r) for r in content.get("routers") or []]
    serving = {n for r in routers if r.disabled is not True for n in r.backends}
    off = {n for r in routers if r.disabled is True for n in r.backends} - serving
    defs = {name: d for name, d in defs.items() if name not in off}  # nothing serves them: do not start them
    built: dict[str, Any] = {}
    by_name: dict[str, Any] = {}
    fresh: list[Any] = []
    try:
        for name, (digest, kind, kwargs) in defs.items():
            backend = previous.backends.get(digest)
            if backend is None:
                backend = make(kind, **kwargs)
                fresh.append(backend)
            built[digest] = backend
            by_name[name] = backend
        return _routes(key, content, routers, by_name), built
    except Exception:
        for backend in fresh:  # nothing else holds them: close now
            try:
                backend.close()
            except Exception:  # noqa: BLE001
                log.exception("closing %s", getattr(backend, "name", backend))
        raise


def _check_auth(key: str, prefix: str, router: Router) -> None:
    """Raise ConfigError for an ``auth`` block that could not serve a request.

    :func:`validate` already refuses these; checking again where the route is built means no
    request can reach an unusable block (an OAuth verifier that cannot be built would be a 500):
    the document keeps its last good routes and ``/readyz`` names the problem instead.
    """
    auth = (router.raw or {}).get("auth")
    if auth is None and router.mode != "oauth2":
        return  # no auth block (most routers): nothing to check, and no import per router of a big catalog
    from .mcp_auth import OAuthVerifier, auth_config_errors

    problems = auth_config_errors(auth, f"routers[{prefix}].auth")
    if not problems and router.mode == "oauth2":
        try:
            OAuthVerifier.from_config(router.auth)
        except ValueError as exc:
            problems = [f"routers[{prefix}].auth: {exc}"]
    if problems:
        raise ConfigError(f"{key}: {'; '.join(problems)}", [f"{key}: {p}" for p in problems])


def _routes(key: str, content: dict[str, Any], routers: list[Router], by_name: dict[str, Any]) -> dict[str, Route]:
    server_dicts = {s["name"]: s for s in (content.get("servers") or []) + (content.get("mcpServers") or [])}

    prompts = {p["name"]: p for p in content.get("prompts") or [] if isinstance(p, dict) and p.get("name")}
    routes: dict[str, Route] = {}
    for router in routers:
        if router.disabled is True:
            continue
        prefix = "/" + router.prefix.strip("/")
        _check_auth(key, prefix, router)
        names = list(router.backends)
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ConfigError(f"{key}: routers[{prefix}]: unknown server {', '.join(missing)}")
        tools: dict[str, ToolEntry] = {}
        tool_list: list[dict[str, Any]] = []
        hidden: list[str] = []
        shapes: dict[str, Shape] = dict(router.tools)
        shaped: set[str] = set()
        for name in names:
            backend = by_name[name]
            for tool in backend.list_tools():
                visible = _tool_name(server_dicts.get(name), tool, len(names) > 1)
                backend_name = tool["name"]  # what the backend is called with, whatever the client sees
                fixed: dict[str, Any] = {}
                change = shapes.get(visible)
                if change is not None:
                    shaped.add(visible)
                    if change.hidden:
                        continue
                    result = shape(tool if visible == tool["name"] else {**tool, "name": visible}, change)
                    for problem in result.problems:
                        problem = f"routers[{prefix}].tools.{visible}.{problem}"
                        log.warning("%s: %s", key, problem)
                        hidden.append(problem)
                    tool, visible, fixed = result.descriptor, result.descriptor["name"], result.fixed
                if not TOOL_NAME_RE.match(visible):
                    # Upstream names are only known now; clients reject names outside the spec's rule.
                    problem = (f"tool {visible!r} of server {name!r} is not 1-64 characters of A-Z a-z 0-9 _ . -; "
                               "not served")
                    log.warning("%s: routers[%s]: %s", key, prefix, problem)
                    hidden.append(problem)
                    continue
                if visible in tools:
                    # Only upstream tools can collide here (REST names are checked at save): the backend listed
                    # first in routers[].servers wins, every time, and /readyz reports the hidden tool.
                    problem = (f"tool {visible!r} of server {name!r} is hidden by the same name from server "
                               f"{tools[visible].server!r}; set distinct toolPrefix values")
                    log.warning("%s: routers[%s]: %s", key, prefix, problem)
                    hidden.append(problem)
                    continue
                descriptor = tool if visible == tool["name"] else {**tool, "name": visible}
                tools[visible] = ToolEntry(visible, descriptor, backend, backend_name, name, fixed)
                tool_list.append(descriptor)
        for unknown in sorted(set(shapes) - shaped):  # names only upstreams could have had (checked at save)
            problem = f"routers[{prefix}].tools.{unknown}: no tool of this name is offered; not applied"
            log.warning("%s: %s", key, problem)
            hidden.append(problem)
        routes[prefix] = Route(
            prefix=prefix, tenant=content["tenant"], document=key, servers=tuple(names),
            backends=tuple(by_name[n] for n in names), tools=tools, tool_list=tuple(tool_list),
            prompts=prompts, cors=router.cors, auth=router.auth,
            sse_prefix=router.sse_prefix.rstrip("/"), digest=_digest(tool_list),
            hidden=tuple(hidden), cache=router.cache, router=router)
    return routes
