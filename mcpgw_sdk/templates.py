"""Templates of config documents: Jinja2 in a sandbox, rendered the way Unla renders.

Every template field of a document (``endpoint``, ``headers``, ``requestBody``,
``responseBody``, ``servers[].config``, ``mcpServers[].env``/``headers``/``url``)
is compiled once (cached by its text) and rendered per call with a context of
these names::

    args                      the call's arguments
    config                    the server's config map, already rendered
    request.headers|query|cookies   the client's request (header names case-insensitive)
    response.status|headers|data|body   the backend's answer
    env("NAME")               only names listed in the ``template_env`` setting

Values render as Unla renders them: booleans as ``true``/``false``, lists and
dicts as compact JSON, ``None`` and missing values as the empty string.

>>> render("{{ args.user.name }} {{ args.tags }}", {"args": {"user": {"name": "ann"}, "tags": ["a"]}})
'ann ["a"]'
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from typing import Any

from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from . import settings
from .errors import TemplateError

__all__ = ["Headers", "Template", "check_template", "compile_template", "env_names", "forbidden_env", "render",
           "request_context"]

_CACHE_LIMIT = 4096


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _finalize(value: Any) -> Any:
    # Unla (Go) prints booleans as true/false; arrays and objects render as JSON
    # so `"tags": {{ args.tags }}` stays valid JSON.
    if value is None or isinstance(value, Undefined):
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, tuple, dict)):
        return _json(value)
    return value


def _tojson(value: Any) -> str:
    """Compact JSON without HTML escaping (``null`` for a missing value)."""
    if isinstance(value, Undefined):
        return "null"
    if isinstance(value, Headers):
        value = dict(value)
    return _json(value)


def _env(name: str) -> str:
    allowed = settings.get("template_env")
    if name not in allowed:
        raise TemplateError(f"env({name!r}) is not allowed; add it to MCPGW_TEMPLATE_ENV")
    return os.environ.get(name, "")


class Headers(dict):
    """A dict of HTTP headers whose lookups ignore the case of the name.

    Keys are stored lower-case: ``Headers({"X-Api-Key": "k"})["x-API-key"] == "k"``.
    """

    def __init__(self, data: Mapping[str, Any] | None = None):
        super().__init__()
        for name, value in (data or {}).items():
            super().__setitem__(str(name).lower(), value)

    def __getitem__(self, name: str) -> Any:
        return super().__getitem__(name.lower() if isinstance(name, str) else name)

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name.lower(), value)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: Any = None) -> Any:
        """The header's value, whatever the case of ``name``, else ``default``."""
        return super().get(name.lower() if isinstance(name, str) else name, default)


def request_context(headers: Mapping[str, Any] | None, query: Mapping[str, Any] | None,
                    cookies: Mapping[str, Any] | None) -> dict[str, Any]:
    """The value of ``request`` in a template context, from the client's HTTP request.

    >>> ctx = {"request": request_context({"Authorization": "Bearer t"}, {}, {})}
    >>> render("{{ request.headers.authorization }}", ctx)
    'Bearer t'
    """
    return {"headers": Headers(headers), "query": dict(query or {}), "cookies": dict(cookies or {})}


_MAX_SIZE = 1_000_000


class _Sandbox(SandboxedEnvironment):
    """The sandbox, plus limits on ``*`` and ``**`` so a template cannot allocate gigabytes."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > 1000:
            raise TemplateError(f"exponent {right} is too large")
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > _MAX_SIZE:
                    raise TemplateError(f"repeating a value {n} times makes more than {_MAX_SIZE} items")
        return super().call_binop(context, operator, left, right)


def _make_env() -> SandboxedEnvironment:
    env = _Sandbox(
        autoescape=False,
        undefined=ChainableUndefined,
        finalize=_finalize,
        keep_trailing_newline=True,  # Go templates keep the text's last newline
        cache_size=0,
    )
    env.filters["tojson"] = _tojson
    env.globals["env"] = _env
    return env


_ENV = _make_env()
_cache: dict[str, Template] = {}
_lock = threading.Lock()


def _normalize(context: Mapping[str, Any]) -> dict[str, Any]:
    ctx = dict(context)
    request = ctx.get("request")
    if isinstance(request, Mapping) and not isinstance(request.get("headers"), Headers):
        ctx["request"] = {**request, "headers": Headers(request.get("headers") or {})}
    response = ctx.get("response")
    if isinstance(response, Mapping) and not isinstance(response.get("headers"), Headers):
        ctx["response"] = {**response, "headers": Headers(response.get("headers") or {})}
    return ctx


class Template:
    """A compiled template; :meth:`render` raises :class:`TemplateError` with the reason on failure."""

    __slots__ = ("text", "field", "_compiled")

    def __init__(self, text: str, *, field: str = ""):
        self.text = text
        self.field = field
        # Parsing finds every syntax error at a quarter of the cost of compiling;
        # compiling waits for the first render, so loading a thousand documents
        # does not compile templates that are never called. Text without markup
        # is never handed to Jinja at all.
        self._compiled = None
        if _has_markup(text):
            try:
                _ENV.parse(text)
            except TemplateSyntaxError as exc:
                raise TemplateError(_where(field) + _syntax_reason(exc)) from None

    def render(self, context: Mapping[str, Any]) -> str:
        """Render with ``context`` (``args``, ``config``, ``request``, ``response``)."""
        compiled = self._compiled
        if compiled is None:
            if not _has_markup(self.text):
                return self.text
            try:
                compiled = self._compiled = _ENV.from_string(self.text)
            except TemplateSyntaxError as exc:
                raise TemplateError(_where(self.field) + _syntax_reason(exc)) from None
        try:
            return compiled.render(_normalize(context))
        except TemplateError as exc:
            raise TemplateError(_where(self.field) + str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any failure inside a user's template is a TemplateError
            raise TemplateError(f"{_where(self.field)}{type(exc).__name__}: {exc}") from None

    def __repr__(self) -> str:
        return f"Template({self.text!r})"


def _has_markup(text: str) -> bool:
    return "{" in text and ("{{" in text or "{%" in text or "{#" in text)


def _where(field: str) -> str:
    return f"{field}: " if field else ""


def _syntax_reason(exc: TemplateSyntaxError) -> str:
    return f"{exc.message} (line {exc.lineno})"


def compile_template(text: str, *, field: str = "") -> Template:
    """Compile ``text`` (cached by text); raise :class:`TemplateError` naming ``field`` and the line on a syntax error."""
    template = _cache.get(text)
    if template is None:
        template = Template(text, field=field)
        with _lock:
            if len(_cache) >= _CACHE_LIMIT:
                _cache.clear()
            _cache[text] = template
    if template.field != field:
        clone = Template.__new__(Template)
        clone.text, clone.field, clone._compiled = text, field, template._compiled
        return clone
    return template


def check_template(text: str) -> str | None:
    """``None`` when ``text`` parses, else the reason (with its line)."""
    if not _has_markup(text):
        return None
    try:
        compile_template(text)
    except TemplateError as exc:
        return str(exc)
    return None


def env_names(text: str) -> list[str]:
    """The names ``text`` reads with ``env("NAME")`` (literal names only; empty when it does not parse).

    >>> env_names('Bearer {{ env("TOKEN") }}')
    ['TOKEN']
    """
    if not _has_markup(text) or "env" not in text:
        return []
    from jinja2 import nodes

    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError:
        return []
    return list(dict.fromkeys(
        call.args[0].value for call in tree.find_all(nodes.Call)
        if isinstance(call.node, nodes.Name) and call.node.name == "env" and call.args
        and isinstance(call.args[0], nodes.Const) and isinstance(call.args[0].value, str)))


def forbidden_env(text: str, *, field: str = "") -> str | None:
    """Why ``text`` can never render here (it reads an ``env()`` name not in ``template_env``), or None."""
    allowed = settings.get("template_env")
    for name in env_names(text):
        if name not in allowed:
            return f"{_where(field)}env({name!r}) is not allowed; add it to MCPGW_TEMPLATE_ENV"
    return None


def render(text: str, context: Mapping[str, Any]) -> str:
    """Compile (cached) and render ``text`` with ``context``."""
    return compile_template(text).render(context)
