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
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sized
from functools import update_wrapper
from types import BuiltinFunctionType
from typing import Any
from urllib.parse import quote

from jinja2 import ChainableUndefined, TemplateSyntaxError, Undefined, nodes, pass_context
from jinja2.exceptions import FilterArgumentError
from jinja2.filters import do_batch, do_indent, do_wordwrap, make_attrgetter, sync_do_slice
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from .errors import TemplateError
from .settings import resolve

__all__ = ["Headers", "Template", "UrlTemplate", "argument_refs", "check_template", "compile_template",
           "compile_url_template", "configure", "env_names", "forbidden_env", "quote_segment", "quote_url_text", "render",
           "render_deadline", "request_context"]

_CACHE_LIMIT = 4096


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)


def _json(value: Any, limit: int | None = None) -> str:
    if limit is None:
        return _ENCODER.encode(value)
    chunks: list[str] = []
    size = 0
    for chunk in _ENCODER.iterencode(value):
        size += len(chunk)
        if size > limit:
            raise TemplateError(f"a value would make more than render_max_bytes ({limit}) characters of JSON")
        chunks.append(chunk)
    return "".join(chunks)


def _finalize(value: Any, limit: int | None = None) -> Any:
    # Unla (Go) prints booleans as true/false; arrays and objects render as JSON
    # so `"tags": {{ args.tags }}` stays valid JSON.
    if value is None or isinstance(value, Undefined):
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (list, tuple, dict)):
        return _json(value, limit)
    return value


@pass_context
def _tojson(context: Any, value: Any) -> str:
    """Compact JSON without HTML escaping (``null`` for a missing value)."""
    if isinstance(value, Undefined):
        return "null"
    if isinstance(value, Headers):
        value = dict(value)
    state = _state(context)
    text = _json(value, state.limit)
    state.size(len(text), "tojson")
    return text


@pass_context
def _fromjson(context: Any, value: Any) -> Any:
    """Parse JSON text, as Unla's ``fromJSON`` does; a list or mapping is already parsed and returned as it is.

    Text that is not JSON (and a missing value) gives an empty list, as in Unla.
    """
    if isinstance(value, (list, tuple, Mapping)):
        return value
    if not isinstance(value, str):
        return []
    _state(context).size(len(value), "fromjson")
    try:
        return json.loads(value)
    except (ValueError, RecursionError):
        return []


def _env(name: str) -> str:
    # Resolved per call, not cached: the allow-list may change in a process that renders (notebooks, tests).
    allowed = resolve().template_env
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


# -- limits -------------------------------------------------------------------------------------------
# A render may take at most render_timeout seconds (or what is left of the call's time) and produce at
# most render_max_bytes; no single value it builds may be larger, and all the text it builds together
# (every {{ }}, ~, *, +, %, call and filter, counted where they happen) at most _BUDGET times that.
# Sizes are checked before computing where they can be (widths, repetition, format fields, the inputs
# of sorting and listing filters), so a refused template never allocates more than a small multiple
# of the limit. Only an allow-list of methods of built-in values may be called. Every loop step, call,
# operator and filter checks the deadline and, every few milliseconds, yields to other greenlets
# (time.sleep(0) is gevent's when gevent patched time).

_STATE = "mcpgw-render"  # a context key no template can name (not an identifier)
_BUDGET = 16
_MAX_BITS = 1 << 20  # integers up to ~315,000 decimal digits
_YIELD_EVERY = 0.005
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.?)")
_DIGITS = re.compile(r"\d+")
_monotonic = time.monotonic

_limits: tuple[float, int] | None = None  # (render_timeout, render_max_bytes), read once; see configure()


def configure(timeout: float | None = None, max_bytes: int | None = None) -> None:
    """Set the render limits, or re-read ``render_timeout``/``render_max_bytes`` from the settings.

    The limits are read once (at the first render) and cached, as the hot path should not parse the
    environment per call; call this after changing ``MCPGW_RENDER_*`` in a running process (tests do).
    """
    global _limits, _unbounded
    resolved = resolve()
    _limits = (float(resolved.render_timeout if timeout is None else timeout),
               int(resolved.render_max_bytes if max_bytes is None else max_bytes))
    _unbounded = None


def _current_limits() -> tuple[float, int]:
    if _limits is None:
        configure()
    return _limits  # type: ignore[return-value]


class _Render:
    """One render's limits and counters (kept in the Jinja context, so greenlets never share it)."""

    __slots__ = ("deadline", "limit", "budget", "spent", "timeout", "paused", "marks")

    def __init__(self, deadline: float, limit: int, timeout: float, now: float):
        self.deadline = deadline
        self.limit = limit
        self.budget = limit * _BUDGET
        self.spent = 0
        self.timeout = timeout
        self.paused = now
        # A URL template's values set aside until the URL around them is known (see UrlTemplate).
        self.marks: list[tuple[str, bool]] | None = None

    def tick(self) -> None:
        """Check the deadline (every step: a monotonic clock read is cheap) and yield every few milliseconds."""
        now = _monotonic()
        if now > self.deadline:
            raise TemplateError(f"rendering took longer than {self.timeout:g} s (render_timeout or the tool's "
                                "timeout)")
        if now - self.paused > _YIELD_EVERY:
            time.sleep(0)  # let other greenlets (other tenants' calls) run
            self.paused = _monotonic()

    def size(self, n: int, what: str) -> None:
        """Refuse a value of ``n`` characters (before it is built when possible) and count it."""
        if n > self.limit:
            raise TemplateError(f"{what} would make {n} characters, more than render_max_bytes ({self.limit})")
        self.spent += n
        if self.spent > self.budget:
            raise TemplateError(f"the template builds more than {self.budget} characters in all "
                                f"({_BUDGET} × render_max_bytes)")
        self.tick()


class _Unbounded(_Render):
    """Limits outside a render (constant folding while compiling): sizes only, no deadline."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(float("inf"), _current_limits()[1], float("inf"), 0.0)
        self.budget = self.limit

    def tick(self) -> None:
        """No deadline while compiling."""


_unbounded: _Unbounded | None = None


def _state(context: Any) -> _Render:
    if context is not None:
        state = context.parent.get(_STATE)
        if state is not None:
            return state
    global _unbounded
    if _unbounded is None:
        _unbounded = _Unbounded()
    return _unbounded


def _weight(value: Any, limit: int) -> int:
    """About how many characters ``value`` takes as text (shared parts counted each time); stops above ``limit``."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, Mapping):
            total += 2 * len(item) + 2
            if total <= limit:
                stack.extend(item.keys())
                stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item) + 2
            if total <= limit:
                stack.extend(item)
        elif isinstance(item, range):
            total += 8 * len(item) + 2
        else:
            total += 8
        if total > limit:
            return total
    return total


def _text_size(value: Any, limit: int) -> int:
    """An upper bound (within a small factor) of ``len(str(value))``, without building it; stops above ``limit``."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, (bytes, bytearray)):
        return 4 * len(value) + 3  # repr: b'\x00'
    if isinstance(value, bool) or value is None:
        return 5
    if isinstance(value, int):
        return value.bit_length() // 3 + 2
    if isinstance(value, float):
        return 330  # '%f' % 1e308 has 316 characters
    if isinstance(value, (Mapping, list, tuple, set, frozenset, range)):
        return 4 * _weight(value, limit)  # quotes, ", " and ": " around every item
    return len(str(value))


def _check_container(state: _Render, value: Any, what: str) -> Any:
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        weight = _weight(value, state.limit)
        if weight > state.limit:
            raise TemplateError(f"{what} would hold more than render_max_bytes ({state.limit}) as text")
    return value


def _check_widths(numbers: Any, state: _Render, what: str) -> int:
    """Refuse '*' and widths or precisions above the limit; return the largest."""
    largest = 0
    for number in numbers:
        if number == "*":
            raise TemplateError(f"{what}: a '*' width or precision is not allowed")
        if number:
            value = int(number)
            if value > state.limit:
                raise TemplateError(f"{what}: width or precision {number} is more than render_max_bytes "
                                    f"({state.limit})")
            largest = max(largest, value)
    return largest


def _longest(state: _Render, values: Any) -> int:
    longest = 0
    for value in values:
        longest = max(longest, _text_size(value, state.limit))
        if longest > state.limit:
            break
    return longest


def _percent(state: _Render, fmt: str, args: Any) -> str:
    """``fmt % args`` after refusing widths, precisions and an estimated result larger than the output limit."""
    fields: list[tuple[int, bool]] = []
    for match in _PERCENT_SPEC.finditer(fmt):
        width, precision, conversion = match.groups()
        if conversion == "%" and width is None and precision is None:
            continue
        fields.append((_check_widths((width, precision), state, "format"), conversion in ("r", "a")))
    if fields:
        values = args.values() if isinstance(args, Mapping) else args if isinstance(args, tuple) else (args,)
        longest = _longest(state, values)
        estimate = len(fmt) + sum(width + longest * (10 if quoted else 1) for width, quoted in fields)
        state.size(estimate, "format")  # refused before a byte of the result exists
    result = fmt % args
    state.size(len(result), "format")
    return result


def _format_fields(text: str, state: _Render) -> list[tuple[int, bool]]:
    """The fields of a ``str.format`` text (largest width, quoted?); refuses nested specs and oversized widths."""
    import string

    fields = []
    for _literal, name, spec, conversion in string.Formatter().parse(text):
        if name is None:
            continue
        if spec and "{" in spec:
            raise TemplateError("str.format: nested fields in a format spec are not allowed")
        width = _check_widths(_DIGITS.findall(spec), state, "str.format") if spec else 0
        fields.append((width, conversion in ("r", "a")))
    return fields


def _check_format_call(state: _Render, fmt: str, fields: list[tuple[int, bool]], values: Any) -> None:
    if fields:
        longest = _longest(state, values)
        state.size(len(fmt) + sum(width + longest * (10 if quoted else 1) for width, quoted in fields),
                   "str.format")


_STR_READ = frozenset({
    "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii", "isdecimal",
    "isdigit", "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle", "isupper", "lower",
    "lstrip", "partition", "removeprefix", "removesuffix", "rfind", "rindex", "rpartition", "rsplit", "rstrip",
    "split", "splitlines", "startswith", "strip", "swapcase", "title", "upper"})
_WIDENING_METHODS = frozenset({"ljust", "rjust", "center", "zfill", "expandtabs", "join", "replace"})
# Methods of built-in values a template may call (format/format_map go through wrap_str_format's check);
# everything else on these types (translate, encode, int.to_bytes, bytes.join, dict.copy...) is refused.
_ALLOWED_METHODS: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_READ | _WIDENING_METHODS),
    ((bytes, bytearray), frozenset({
        "decode", "count", "endswith", "find", "index", "isalnum", "isalpha", "isascii", "isdigit", "islower",
        "isspace", "istitle", "isupper", "lower", "lstrip", "rfind", "rindex", "rstrip", "split", "startswith",
        "strip", "upper"})),
    ((int, float), frozenset({"as_integer_ratio", "bit_count", "bit_length", "conjugate", "hex", "is_integer"})),
    (Mapping, frozenset({"get", "items", "keys", "values"})),
    ((list, tuple, range), frozenset({"count", "index"})),
    ((set, frozenset), frozenset({"isdisjoint", "issubset", "issuperset"})),
)
_BUILTIN_VALUES = (str, bytes, bytearray, int, float, complex, Mapping, list, tuple, range, set, frozenset)
_BUILTIN_TYPES = frozenset({str, bytes, bytearray, int, float, bool, complex, dict, list, tuple, range, set,
                            frozenset})
_BUILTIN_TYPE_NAMES = frozenset(kind.__name__ for kind in _BUILTIN_TYPES)


def _static_builtin(obj: Any) -> bool:
    """``str.maketrans`` and the like: static methods of built-in types (no ``__self__``)."""
    return isinstance(obj, BuiltinFunctionType) and obj.__self__ is None \
        and obj.__qualname__.partition(".")[0] in _BUILTIN_TYPE_NAMES


def _allowed_method(owner: Any, name: str) -> bool:
    for types, names in _ALLOWED_METHODS:
        if isinstance(owner, types):
            return name in names
    return False


def _check_method(state: _Render, owner: str, name: str, args: tuple, kwargs: dict) -> None:
    """Refuse str methods whose result would exceed the output limit, before calling them."""
    if name in ("ljust", "rjust", "center", "zfill"):
        width = args[0] if args else kwargs.get("width", 0)
        if isinstance(width, int):
            state.size(max(width, len(owner)), name)
    elif name == "expandtabs":
        tab = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tab, int):
            state.size(len(owner) + owner.count("\t") * max(tab, 0), name)
    elif name == "replace" and len(args) >= 2:
        old, new = args[0], args[1]
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        if isinstance(old, str) and isinstance(new, str):
            found = owner.count(old) + (1 if not old else 0)
            if isinstance(count, int) and count >= 0:
                found = min(found, count)
            state.size(len(owner) + found * max(len(new) - len(old), 0), name)


def _join_parts(state: _Render, items: Any, sep: str, what: str) -> str:
    parts: list[str] = []
    total = 0
    for item in items:
        text = item if isinstance(item, str) else str(item)
        total += len(text) + len(sep)
        if total > state.limit:
            state.size(total, what)
        parts.append(text)
        state.tick()
    result = sep.join(parts)
    state.size(len(result), what)
    return result


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox (lists and dicts cannot be changed), plus the render limits above."""

    intercepted_binops = frozenset(["*", "**", "+", "%"])

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        return _Guard().visit(super()._parse(source, name, filename))

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        """``*``, ``**``, ``+`` and ``%`` with their results' sizes checked first."""
        state = _state(context)
        state.tick()
        if operator == "**":
            if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0 \
                    and left.bit_length() * right > _MAX_BITS:
                raise TemplateError(f"a power with exponent {right} is too large a number")
            if isinstance(right, (int, float)) and abs(right) > 1000:
                raise TemplateError(f"exponent {right} is too large")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(n, int) and not isinstance(n, bool):
                    if isinstance(seq, (str, bytes)):
                        state.size(len(seq) * max(n, 0), "repeating a text")
                    elif isinstance(seq, (list, tuple)):
                        weight = _weight(seq, state.limit) * max(n, 0)
                        if weight > state.limit:
                            raise TemplateError(f"repeating a list {n} times would hold more than "
                                                f"render_max_bytes ({state.limit}) as text")
            if isinstance(left, int) and isinstance(right, int) and \
                    left.bit_length() + right.bit_length() > _MAX_BITS:
                raise TemplateError("the product is too large a number")
        elif operator == "+":
            if isinstance(left, (str, bytes)) and isinstance(right, (str, bytes)):
                state.size(len(left) + len(right), "joining texts")
            elif isinstance(left, (list, tuple)) and isinstance(right, (list, tuple)):
                result = super().call_binop(context, operator, left, right)
                return _check_container(state, result, "the list")
        elif operator == "%":
            if isinstance(left, str):
                return _percent(state, left, right)
            if isinstance(left, (bytes, bytearray)):
                raise TemplateError("'%' on bytes is not allowed")
        return super().call_binop(context, operator, left, right)

    def is_safe_callable(self, obj: Any) -> bool:
        """Jinja's rule, and methods of built-in values only from the allow-list."""
        owner = getattr(obj, "__self__", None)
        if _static_builtin(obj) or owner is not None and (
                isinstance(owner, type) and owner in _BUILTIN_TYPES
                or isinstance(owner, _BUILTIN_VALUES) and not _allowed_method(owner, getattr(obj, "__name__", ""))):
            return False
        return super().is_safe_callable(obj)

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        """A sandboxed call: allow-listed methods only, widening str methods checked first, the result's size after."""
        state = _state(__context)
        state.tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, type) and owner in _BUILTIN_TYPES or _static_builtin(__obj):  # int.from_bytes
            raise TemplateError(f"{getattr(__obj, '__qualname__', '')}() is not allowed in templates")
        if owner is not None and isinstance(owner, _BUILTIN_VALUES):
            name = getattr(__obj, "__name__", "")
            if not _allowed_method(owner, name):
                raise TemplateError(f"{type(owner).__name__}.{name}() is not allowed in templates")
            if isinstance(owner, str) and name in _WIDENING_METHODS:
                if name == "join":
                    if len(args) == 1 and not kwargs:
                        return _join_parts(state, args[0], owner, "join")
                    raise TemplateError("str.join takes one argument")
                _check_method(state, owner, name, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, (str, bytes)):
            state.size(len(result), "a call")
        else:
            _check_container(state, result, "a call's result")
        return result

    def wrap_str_format(self, value: Any) -> Any:
        """``str.format``/``format_map`` of the sandbox, refusing oversized widths, nested specs and results
        estimated larger than the output limit (before formatting)."""
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        fmt = value.__self__
        unbounded = _state(None)
        fields = _format_fields(fmt, unbounded)
        if not fields:
            return wrapper
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            values = list(args) + list(kwargs.values())
            if is_map and len(args) == 1 and isinstance(args[0], Mapping):
                values = list(args[0].values())
            _check_format_call(_state(None), fmt, fields, values)
            return wrapper(*args, **kwargs)

        return update_wrapper(checked, value)


class _Guard(NodeTransformer):
    """Rewrites a parsed template so loops check the deadline and built values their size."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, "mcpgw_loop", [], [], None, None, lineno=node.lineno)
        return node

    def _wrap(self, node: nodes.Expr) -> nodes.Node:
        self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node
        return nodes.Filter(node, "mcpgw_built", [], [], None, None, lineno=node.lineno)

    visit_Concat = visit_List = visit_Tuple = visit_Dict = _wrap


@pass_context
def _loop(context: Any, iterable: Any) -> Any:
    state = _state(context)
    if isinstance(iterable, Undefined):
        return iterable
    return _ticking(state, iterable)


def _ticking(state: _Render, iterable: Any, most: int | None = None, what: str = "") -> Any:
    for count, item in enumerate(iterable):
        state.tick()
        if most is not None and count >= most:
            raise TemplateError(f"{what} would sort more than {most} items (render_max_bytes / {_SORT_FACTOR})")
        yield item


@pass_context
def _built(context: Any, value: Any) -> Any:
    state = _state(context)
    if isinstance(value, str):
        state.size(len(value), "joining texts")
        return value
    return _check_container(state, value, "the list")


# Built-in filters whose work grows with their input (sorting, copying into lists, grouping): their input
# may be at most render_max_bytes as text, and a lazy input is iterated with the deadline checked per item.
_HEAVY_FILTERS = frozenset({"sort", "pprint", "list", "unique", "dictsort", "groupby", "map", "select", "reject",
                            "selectattr", "rejectattr", "min", "max", "reverse", "items", "string",
                            "xmlattr", "urlencode"})
# Sorting is one step that cannot be interrupted, and Jinja's sort calls a Python key per item: at most
# render_max_bytes / _SORT_FACTOR items (16,384 by default: tens of milliseconds).
_SORTING_FILTERS = frozenset({"sort", "unique", "dictsort", "groupby", "min", "max"})
_SORT_FACTOR = 64


def _counted(name: str, func: Any, heavy: bool) -> Any:
    """``func`` (a built-in filter or test) checking the deadline before and after, and the size of what it returns."""
    kind = _PassArg.from_obj(func)
    sorting = name in _SORTING_FILTERS

    def counted(context: Any, value: Any = None, *args: Any, **kwargs: Any) -> Any:
        state = _state(context)
        state.tick()
        if heavy:
            most = state.limit // _SORT_FACTOR if sorting else None
            if isinstance(value, Iterator):
                value = _ticking(state, value, most, f"|{name}")
            elif not isinstance(value, str):
                if most is not None and isinstance(value, Sized) and len(value) > most:
                    raise TemplateError(f"|{name} would sort more than {most} items (render_max_bytes / "
                                        f"{_SORT_FACTOR})")
                if _weight(value, state.limit) > state.limit:
                    raise TemplateError(f"|{name}: its input is more than render_max_bytes ({state.limit}) as text")
        if kind is _PassArg.context:
            result = func(context, value, *args, **kwargs)
        elif kind is _PassArg.eval_context:
            result = func(context.eval_ctx, value, *args, **kwargs)
        elif kind is _PassArg.environment:
            result = func(context.environment, value, *args, **kwargs)
        else:
            result = func(value, *args, **kwargs)
        if isinstance(result, str) and result is not value:
            state.size(len(result), f"|{name}")
        else:
            _check_container(state, result, f"|{name}")
            state.tick()
        return result

    update_wrapper(counted, func)
    counted.__dict__.pop("jinja_async_variant", None)
    return pass_context(counted)  # after update_wrapper, which copies func's own pass marker


@pass_context
def _format(context: Any, value: Any, *args: Any, **kwargs: Any) -> str:
    if args and kwargs:
        raise FilterArgumentError("can't handle positional and keyword arguments at the same time")
    return _percent(_state(context), str(value), kwargs or args)


@pass_context
def _center(context: Any, value: Any, width: int = 80) -> str:
    text = str(value)
    _state(context).size(max(int(width), len(text)), "center")
    return text.center(int(width))


@pass_context
def _indent(context: Any, s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    text = str(s)
    pad = width if isinstance(width, str) else " " * min(max(int(width), 0), _state(context).limit + 1)
    _state(context).size(len(text) + (text.count("\n") + 1) * len(pad), "indent")
    return do_indent(text, width, first, blank)


@pass_context
def _wordwrap(context: Any, s: Any, width: int = 79, break_long_words: bool = True, wrapstring: str | None = None,
              break_on_hyphens: bool = True) -> str:
    text = str(s)
    sep = wrapstring if wrapstring is not None else context.environment.newline_sequence
    lines = (len(text) // max(int(width), 1)) + text.count("\n") + 1
    _state(context).size(len(text) + lines * len(str(sep)), "wordwrap")
    return do_wordwrap(context.environment, text, width, break_long_words, wrapstring, break_on_hyphens)


@pass_context
def _join(context: Any, value: Any, d: str = "", attribute: Any = None) -> str:
    if attribute is not None:
        value = map(make_attrgetter(context.environment, attribute), value)
    return _join_parts(_state(context), value, str(d), "join")


@pass_context
def _replace(context: Any, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    text, old, new = str(s), str(old), str(new)
    found = text.count(old) + (0 if old else 1)
    if count is not None:
        found = min(found, max(int(count), 0))
    _state(context).size(len(text) + found * max(len(new) - len(old), 0), "replace")
    return text.replace(old, new, -1 if count is None else int(count))


@pass_context
def _sum(context: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    state = _state(context)
    if attribute is not None:
        iterable = map(make_attrgetter(context.environment, attribute), iterable)
    total = start
    for item in iterable:
        if not isinstance(item, (int, float)) or not isinstance(total, (int, float)):
            raise TemplateError("sum adds numbers only")
        total += item
        state.tick()
    return total


@pass_context
def _batch(context: Any, value: Any, linecount: int, fill_with: Any = None) -> Any:
    _state(context).size(int(linecount), "batch")
    return do_batch(value, linecount, fill_with)


@pass_context
def _slice(context: Any, value: Any, slices: int, fill_with: Any = None) -> Any:
    _state(context).size(int(slices), "slice")
    return sync_do_slice(value, slices, fill_with)


@pass_context
def _dict(context: Any, *args: Any, **kwargs: Any) -> dict:
    state = _state(context)
    state.tick()
    return _check_container(state, dict(*args, **kwargs), "dict()")


@pass_context
def _finalize_checked(context: Any, value: Any) -> Any:
    state = _state(context)
    out = _finalize(value, state.limit)
    if isinstance(out, str):
        state.size(len(out), "a {{ }} value")
    else:
        state.tick()
    return out


# -- URLs: every value a template puts into an endpoint is percent-encoded for where it lands ---------
# The filter below wraps each {{ }} of an endpoint that is not built from config/env() alone (see
# _mark_urls). It cannot encode the value itself, as where the value lands (host, path, query) depends on
# the text rendered before it, config values included; so it sets the value aside and leaves a marker,
# and UrlTemplate.render encodes each value once the URL before it is known. The filter's name is not an
# identifier, so no template can write it.
_URL_FILTER = "mcpgw url"
_MARK = re.compile("\x00(\\d+)\x01")
#: What a value may keep when it is inserted as URL text (scheme, host, a ``raw`` argument): RFC 3986's
#: reserved characters and ``%``; spaces, controls, non-ASCII, quotes, ``<>{}|\\^`` are percent-encoded.
_URL_TEXT_SAFE = "!#$&'()*+,/:;=?@[]~%"
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_PATH_STARTED = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*/")


def quote_segment(text: str) -> str:
    """``text`` percent-encoded as one path segment or query value: ``/``, ``?``, ``#``, ``%``, ``&``... included.

    A whole ``.`` or ``..`` is encoded too, so a value can never climb the path.

    >>> quote_segment("../../admin?all=1#")
    '..%2F..%2Fadmin%3Fall%3D1%23'
    >>> quote_segment("..")
    '%2E%2E'
    """
    if text in (".", ".."):
        return "%2E" * len(text)
    if _UNRESERVED.fullmatch(text):  # nothing to encode (the usual argument): skip quote's per-byte pass
        return text
    return quote(text, safe="")


def quote_url_text(text: str) -> str:
    """``text`` as URL text: reserved characters (``/ ? # & = : @ %``...) kept, what a URL cannot hold encoded.

    >>> quote_url_text("docs/a b/é.md")
    'docs/a%20b/%C3%A9.md'
    """
    return quote(text, safe=_URL_TEXT_SAFE)


@pass_context
def _url_value(context: Any, value: Any, raw: bool = False) -> str:
    state = _state(context)
    text = _finalize(value, state.limit)
    text = text if isinstance(text, str) else str(text)
    state.size(len(text), "a URL value")
    if _UNRESERVED.fullmatch(text) and text not in (".", ".."):
        return text  # the same wherever it lands (ids, numbers): nothing to set aside
    marks = state.marks
    if marks is None:  # not a URL template's render (only reached through compile_url_template's trees)
        return quote_segment(text)
    marks.append((text, raw))
    return f"\x00{len(marks) - 1}\x01"


def _place(text: str, marks: list[tuple[str, bool]], limit: int) -> str:
    """Replace the markers of ``text`` by their values, each encoded for where it lands."""
    out = ""
    pos = 0
    for match in _MARK.finditer(text):
        index = int(match.group(1))
        if index >= len(marks):
            continue
        out += text[pos:match.start()]
        value, raw = marks[index]
        if raw:
            out += quote_url_text(value)
        elif "?" in out or "#" in out or _PATH_STARTED.match(out):  # the path, the query or the fragment
            out += quote_segment(value)
        else:  # scheme and authority (or the whole URL): the guard judges the authority it ends up with
            out += quote_url_text(value)
        pos = match.end()
        if len(out) > limit:
            break
    out += text[pos:]
    if len(out) > limit:
        raise TemplateError(f"the URL is longer than render_max_bytes ({limit} characters) once percent-encoded")
    return out


_OPAQUE = (nodes.ContextReference, nodes.DerivedContextReference, nodes.InternalName, nodes.ImportedName,
           nodes.ExtensionAttribute)


def _all_nodes(expr: nodes.Node) -> Iterator[nodes.Node]:
    yield expr
    yield from expr.find_all(nodes.Node)


def _from_trusted(expr: nodes.Node, trusted: set[str]) -> bool:
    """Whether ``expr`` only reads names in ``trusted`` (and constants)."""
    for node in _all_nodes(expr):
        if isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in trusted:
            return False
        if isinstance(node, _OPAQUE):
            return False
    return True


def _trusted_names(tree: nodes.Template) -> set[str]:
    """``config``, ``env`` and the variables set from them only (``{% set base = config.baseUrl %}``).

    Anything else a template can name — ``args``, ``request``, loop variables, macro parameters, a
    variable set from an argument, a ``config`` it shadows — is the caller's text.
    """
    sources: dict[str, list[nodes.Node | None]] = {}
    explained: set[int] = set()
    for node in tree.find_all((nodes.Assign, nodes.For, nodes.With)):
        if isinstance(node, nodes.Assign):
            pairs = [(node.target, node.node)]
        elif isinstance(node, nodes.For):
            pairs = [(node.target, node.iter)]
        else:
            pairs = list(zip(node.targets, node.values, strict=False))
        for target, value in pairs:
            for name in _all_nodes(target):
                if isinstance(name, nodes.Name):
                    sources.setdefault(name.name, []).append(value)
                    explained.add(id(name))
    for name in tree.find_all(nodes.Name):
        if name.ctx in ("store", "param") and id(name) not in explained:
            sources.setdefault(name.name, []).append(None)
    trusted = {"config", "env"} | set(sources)
    changed = True
    while changed:
        changed = False
        for name, values in sources.items():
            if name in trusted and any(v is None or not _from_trusted(v, trusted) for v in values):
                trusted.discard(name)
                changed = True
    return trusted


def _static_refs(expr: nodes.Node) -> tuple[list[str], int]:
    """The names read as ``args.NAME``/``args["NAME"]`` in ``expr``, and how many times ``args`` is read in all."""
    names: list[str] = []
    uses = 0
    for node in _all_nodes(expr):
        if isinstance(node, nodes.Name) and node.name == "args" and node.ctx == "load":
            uses += 1
        elif isinstance(node, (nodes.Getattr, nodes.Getitem)) and isinstance(node.node, nodes.Name) \
                and node.node.name == "args" and node.node.ctx == "load":
            key = node.attr if isinstance(node, nodes.Getattr) else \
                node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else None
            if key is not None:
                names.append(key)
    return names, uses


def _mark_urls(tree: nodes.Template, raw: frozenset[str]) -> nodes.Template:
    """Wrap every ``{{ }}`` of ``tree`` that is not built from config/env() alone in the URL filter.

    An expression that reads only ``raw`` arguments (``{{ args.path }}`` with ``raw: true``) is
    marked raw: it keeps its ``/``, ``?`` and ``#``.
    """
    trusted = _trusted_names(tree)
    for output in tree.find_all(nodes.Output):
        wrapped = []
        for node in output.nodes:
            if isinstance(node, nodes.TemplateData) or _from_trusted(node, trusted):
                wrapped.append(node)
                continue
            names, uses = _static_refs(node)
            is_raw = bool(raw) and bool(names) and len(names) == uses and all(n in raw for n in names) \
                and _from_trusted(node, trusted | {"args"}) and "args" not in trusted
            wrapped.append(nodes.Filter(node, _URL_FILTER, [nodes.Const(is_raw)], [], None, None,
                                        lineno=node.lineno))
        output.nodes = wrapped
    return tree


_SIMPLE_EXPR = re.compile(r"\{\{[ \t]*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)[ \t]*\}\}")
_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False",
                       "None"})


def _simple_refs(text: str) -> tuple[list[str], list[str], bool] | None:
    """:func:`argument_refs` of a template made only of ``{{ a.b.c }}`` reads and text, without Jinja's parser
    (a document of 500 tools has 500 such endpoints); ``None`` for anything else, which Jinja then parses."""
    if "{%" in text or "{#" in text:
        return None
    literals: list[str] = []
    names: list[str] = []
    dynamic = False
    pos = 0
    for match in _SIMPLE_EXPR.finditer(text):
        parts = match.group(1).split(".")
        if not _KEYWORDS.isdisjoint(parts):
            return None
        if match.start() > pos:
            literals.append(text[pos:match.start()])
        if parts[0] == "args":
            if len(parts) > 1:
                names.append(parts[1])
            else:
                dynamic = True
        pos = match.end()
    if pos < len(text):
        literals.append(text[pos:])
    if any("{{" in literal for literal in literals):
        return None  # an expression of another shape: Jinja's parser reads it
    return literals, list(dict.fromkeys(names)), dynamic


def argument_refs(text: str) -> tuple[list[str], list[str], bool] | None:
    """What a template reads of the arguments, for checking documents: ``(literal texts, names, dynamic)``.

    ``names`` are read as ``args.NAME`` or ``args["NAME"]`` (in order, once each); ``dynamic`` is true when
    ``args`` is also read another way (``args[config.key]``, ``args.items()``), so the names may be
    incomplete. ``None`` when ``text`` does not parse.

    >>> argument_refs("{{ config.base }}/users/{id}?q={{ args.q }}")
    (['/users/{id}?q='], ['q'], False)
    """
    if not _has_markup(text):
        return [text], [], False
    simple = _simple_refs(text)
    if simple is not None:
        return simple
    try:
        tree = _ENV.parse(text)
    except TemplateSyntaxError:
        return None
    literals = [node.data for node in tree.find_all(nodes.TemplateData)]
    names, uses = _static_refs(tree)
    shadowed = "args" in _trusted_names(tree) or any(
        isinstance(n, nodes.Name) and n.name == "args" and n.ctx != "load" for n in tree.find_all(nodes.Name))
    return literals, list(dict.fromkeys(names)), shadowed or uses > len(names)


def _make_env() -> SandboxedEnvironment:
    env = _Sandbox(
        autoescape=False,
        undefined=ChainableUndefined,
        finalize=_finalize_checked,
        keep_trailing_newline=True,  # Go templates keep the text's last newline
        cache_size=0,
    )
    for name, func in list(env.filters.items()):
        env.filters[name] = _counted(name, func, name in _HEAVY_FILTERS)
    for name, func in list(env.tests.items()):
        env.tests[name] = _counted(name, func, False)
    env.filters.update({"tojson": _tojson, "fromjson": _fromjson, "format": _format, "center": _center, "indent": _indent,
                        "wordwrap": _wordwrap, "join": _join, "replace": _replace, "sum": _sum, "batch": _batch,
                        "slice": _slice, "mcpgw_loop": _loop, "mcpgw_built": _built, _URL_FILTER: _url_value})
    env.globals.pop("lipsum", None)  # lipsum(10**9) would write gigabytes
    env.globals["dict"] = _dict
    env.globals["env"] = _env
    return env


_ENV = _make_env()
_cache: dict[str, Template] = {}
_lock = threading.Lock()


def _with_headers(value: Any) -> Any:
    """``request``/``response`` with case-insensitive ``headers`` (a copy, when they are not already)."""
    if isinstance(value, dict) or isinstance(value, Mapping):
        headers = value.get("headers")
        if type(headers) is not Headers:
            return {**value, "headers": Headers(headers or {})}
    return value


def _variables(compiled: Any, context: Mapping[str, Any], state: _Render) -> dict[str, Any]:
    """The template's globals, ``context`` and the render's state in one dict (Jinja would copy twice)."""
    ctx = {**_ENV.globals, **context}  # compiled.globals is a ChainMap over these (from_string adds none)
    request = ctx.get("request")
    if request is not None:
        ctx["request"] = _with_headers(request)
    response = ctx.get("response")
    if response is not None:
        ctx["response"] = _with_headers(response)
    ctx[_STATE] = state
    return ctx


class Template:
    """A compiled template; :meth:`render` raises :class:`TemplateError` with the reason on failure."""

    __slots__ = ("text", "field", "_compiled")
    #: Whether renders set values aside for :func:`_place` (``UrlTemplate``).
    _url = False

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

    def render(self, context: Mapping[str, Any], *, deadline: float | None = None) -> str:
        """Render with ``context`` (``args``, ``config``, ``request``, ``response``).

        The render stops with a :class:`TemplateError` after ``render_timeout`` seconds (or at
        ``deadline``, a :func:`time.monotonic` time, or the one :func:`render_deadline` set, when
        earlier) and when it would produce more than ``render_max_bytes`` characters.
        """
        compiled = self._compiled
        if compiled is None:
            if not _has_markup(self.text):
                return self.text
            try:
                compiled = self._compiled = self._build()
            except TemplateSyntaxError as exc:
                raise TemplateError(_where(self.field) + _syntax_reason(exc)) from None
        timeout, limit = _limits or _current_limits()
        now = _monotonic()
        end = now + timeout
        if deadline is not None and deadline < end:
            end, timeout = deadline, max(deadline - now, 0.0)
        if _ambient is not None:
            other = getattr(_ambient, "deadline", None)
            if other is not None and other < end:
                end, timeout = other, max(other - now, 0.0)
        state = _Render(end, limit, timeout, now)
        if self._url:
            state.marks = []
        try:
            # root_render_func over a shared context is what Template.generate does, minus two dict copies;
            # every step inside ticks (loops, calls, operators, filters, {{ }}), so chunks need not.
            chunks: list[str] = []
            size = 0
            for chunk in compiled.root_render_func(compiled.new_context(_variables(compiled, context, state), True)):
                size += len(chunk)
                if size > limit:
                    raise TemplateError(f"the output is longer than render_max_bytes ({limit} characters)")
                chunks.append(chunk)
            if state.marks:
                return _place("".join(chunks), state.marks, limit)
            return "".join(chunks)
        except TemplateError as exc:
            raise TemplateError(_where(self.field) + str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - any failure inside a user's template is a TemplateError
            raise TemplateError(f"{_where(self.field)}{type(exc).__name__}: {exc}") from None

    def _build(self) -> Any:
        return _ENV.from_string(self.text)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.text!r})"


class UrlTemplate(Template):
    """An endpoint template: every value it inserts is percent-encoded for where it lands in the URL.

    A ``{{ }}`` built from ``config`` and ``env()`` alone is inserted as it is. Any other — an argument,
    the client's request, a loop variable — is encoded once the URL before it is rendered: in the path,
    the query or the fragment as one segment or value (:func:`quote_segment`: ``/ ? # % &`` included); in
    the scheme or host, or as the whole URL, as URL text (:func:`quote_url_text`; the outbound guard judges
    the authority). An expression that reads only arguments named in ``raw`` is always URL text, so it
    may hold slashes.

    >>> UrlTemplate("{{ config.base }}/users/{{ args.id }}").render(
    ...     {"config": {"base": "http://h/v2"}, "args": {"id": "../admin?x#"}})
    'http://h/v2/users/..%2Fadmin%3Fx%23'
    """

    __slots__ = ("raw",)
    _url = True

    def __init__(self, text: str, *, field: str = "", raw: frozenset[str] = frozenset()):
        super().__init__(text, field=field)
        self.raw = raw

    def _build(self) -> Any:
        return _ENV.from_string(_mark_urls(_ENV.parse(self.text), self.raw))


_ambient: Any = None  # a threading.local made at first use, so it is gevent's when the gateway patched threading


def _ambient_local() -> Any:
    global _ambient
    if _ambient is None:
        with _lock:
            if _ambient is None:
                _ambient = threading.local()
    return _ambient


class render_deadline:  # noqa: N801 - used like a function: ``with render_deadline(t):``
    """Make every render in this thread (greenlet, under gevent) stop by ``deadline`` (a monotonic time).

    Callers set it to the end of a tool call, so the tool's timeout also covers rendering::

        with render_deadline(time.monotonic() + 5):
            template.render(context)
    """

    def __init__(self, deadline: float | None):
        self.deadline = deadline
        self._saved: float | None = None

    def __enter__(self) -> render_deadline:
        local = _ambient_local()
        self._saved = getattr(local, "deadline", None)
        local.deadline = self.deadline
        return self

    def __exit__(self, *exc: Any) -> None:
        _ambient_local().deadline = self._saved


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


def compile_url_template(text: str, *, field: str = "", raw: Any = ()) -> UrlTemplate:
    """Compile an endpoint (cached by text and ``raw``, the argument names kept as URL text); see :class:`UrlTemplate`."""
    raw = frozenset(raw)
    cache_key = ("url", text, raw)
    template = _cache.get(cache_key)  # type: ignore[call-overload]
    if template is None:
        template = UrlTemplate(text, field=field, raw=raw)
        with _lock:
            if len(_cache) >= _CACHE_LIMIT:
                _cache.clear()
            _cache[cache_key] = template  # type: ignore[index]
    if template.field != field:
        clone = UrlTemplate.__new__(UrlTemplate)
        clone.text, clone.field, clone._compiled, clone.raw = text, field, template._compiled, raw
        return clone
    return template  # type: ignore[return-value]


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


def forbidden_env(text: str, *, field: str = "", allowed: Iterable[str] | None = None) -> str | None:
    """Why ``text`` can never render here (it reads an ``env()`` name not in ``template_env``), or None.

    ``allowed`` is the ``template_env`` setting (``None``: resolved now).
    """
    allowed = resolve().template_env if allowed is None else allowed
    for name in env_names(text):
        if name not in allowed:
            return f"{_where(field)}env({name!r}) is not allowed; add it to MCPGW_TEMPLATE_ENV"
    return None


def render(text: str, context: Mapping[str, Any]) -> str:
    """Compile (cached) and render ``text`` with ``context``."""
    return compile_template(text).render(context)
