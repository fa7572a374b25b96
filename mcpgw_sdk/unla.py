"""Unla's documents: translate their Go templates to our Jinja templates and back.

Unla (the Go MCP gateway whose document shape mcpgw keeps) writes templates in
Go's ``text/template``: ``{{.Args.email}}``, ``{{ toJSON .Args.tags }}``,
``{{ env "TOKEN" }}``. :func:`translate` turns one such template into Jinja;
:func:`from_unla` does it for every template field of a document;
:func:`to_unla` goes back for the forms that have an Unla spelling.

>>> translate('Bearer {{ env "TOKEN" }} {{.Args.tags | toJSON}}')
'Bearer {{ env("TOKEN") }} {{ args.tags | tojson }}'

``range``, ``with``, variables, ``fromJSON``, ``add``, ``index``, ``printf`` and the common
Sprig functions translate (the table is in ``docs/config-format.md``); what does not
(``define``, ``break``, other Sprig functions) is refused with the field, the line, the
construct and the Jinja to write instead, so nothing half-works. :func:`import_document`
is what every import calls. Go's ``{{-``/``-}}`` whitespace trimming becomes
Jinja's ``{{-``/``{%-``/``-}}``/``-%}``, which trims the same way.
"""

from __future__ import annotations

import copy
import json
import keyword
import re
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from .config_model import DEFAULT_TENANT
from .documents import UNLA_DROPPED, iter_templates
from .errors import ConfigError, TemplateError

__all__ = ["from_unla", "import_document", "is_unla", "to_unla", "translate", "wrong_format", "wrong_format_error"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JINJA_WORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"}
_GO_HINT = re.compile(
    r"\{\{-?\s*(?:\.[A-Za-z]|\$|(?:if|else|end|range|with|toJSON|fromJSON|env|index|safeGet|safeGetOr|len|printf"
    r"|add)\b(?!\s*\())")


class _Refused(Exception):
    """An Unla construct without a translation (the reason is the message)."""


# -- Go template lexing ----------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)+')
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?))
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:=|=|\||\(|\)|,)
""", re.VERBOSE)


def _split_actions(text: str) -> list[tuple[str, str, str, str, int]]:
    """``[("text", text, "", "", line), ("action", inner, "-" | "", "-" | "", line), …]``.

    The dashes are Go's trim markers; ``line`` is where the piece starts.
    """
    parts: list[tuple[str, str, str, str, int]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start < 0:
            parts.append(("text", text[pos:], "", "", 0))
            return parts
        parts.append(("text", text[pos:start], "", "", 0))
        inner_start = start + 2
        left = ""
        if text[inner_start:inner_start + 1] == "-" and text[inner_start + 1:inner_start + 2] in (" ", "\t", "\r", "\n"):
            left = "-"
            inner_start += 1
        end = _find_close(text, inner_start)
        inner = text[inner_start:end]
        right = ""
        if inner.endswith("-") and inner[-2:-1] in (" ", "\t", "\r", "\n"):
            inner = inner[:-1]
            right = "-"
        parts.append(("action", inner.strip(), left, right, text.count("\n", 0, start) + 1))
        pos = end + 2


def _find_close(text: str, pos: int) -> int:
    quote = None
    i = pos
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "\"`'":
            quote = ch
        elif text.startswith("}}", i):
            return i
        elif text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                break
            i = close + 2
            continue
        i += 1
    raise _Refused(f"line {text.count(chr(10), 0, pos) + 1}: unclosed action: '{{{{' without '}}}}'")


def _tokens(action: str) -> list[tuple[str, str]]:
    out = []
    pos = 0
    while pos < len(action):
        m = _TOKEN.match(action, pos)
        if not m:
            raise _Refused(f"cannot read {action[pos:]!r}")
        pos = m.end()
        # (pipeline).Field and $x.Field are one operand, unlike (pipeline) .Field and $x .Field
        if m.lastgroup == "field" and out and (out[-1] == ("op", ")") or out[-1][0] == "var") \
                and not action[m.start() - 1].isspace():
            out.append(("chain", m.group()))
        elif m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


# -- Go expressions → Jinja expressions ----------------------------------

class _Expr:
    """A Jinja expression text, whether it needs parentheses as an operand, its path, whether it is an integer."""

    __slots__ = ("text", "atom", "path", "num")

    def __init__(self, text: str, atom: bool = True, path: tuple | None = None, num: bool = False):
        self.text, self.atom, self.path, self.num = text, atom, path, num

    def operand(self) -> str:
        return self.text if self.atom else f"({self.text})"


def _subscript(base: str, segment: Any) -> str:
    if isinstance(segment, int):
        return f"{base}[{segment}]"
    # args.items would be the mapping's items() method: such names are subscripted, args["items"]
    if _IDENT.match(segment) and segment not in _JINJA_WORDS and not keyword.iskeyword(segment) \
            and not hasattr(dict, segment):
        return f"{base}.{segment}"
    return f"{base}[{json.dumps(segment, ensure_ascii=False)}]"


def _with_path(base: _Expr, segments: list) -> _Expr:
    text = base.operand()
    path = base.path
    for seg in segments:
        if path == ("request", "headers") and isinstance(seg, str):
            seg = seg.lower()
        text = _subscript(text, seg)
        path = (path + (seg,)) if path is not None else None
    return _Expr(text, True, path)


_ROOTS = {"Args": "args", "Config": "config"}
_REQUEST = {"Headers": "headers", "Query": "query", "Cookies": "cookies"}
_RESPONSE = {"Data": "data", "Body": "body", "Status": "status", "Headers": "headers"}


def _field(chain: str) -> _Expr:
    names = chain.split(".")[1:]
    root = names[0]
    if root in _ROOTS:
        return _with_path(_Expr(_ROOTS[root], True, (_ROOTS[root],)), names[1:])
    if root in ("Request", "Response"):
        table = _REQUEST if root == "Request" else _RESPONSE
        if len(names) < 2 or names[1] not in table:
            raise _Refused(f".{root} needs one of {', '.join('.' + root + '.' + k for k in table)}")
        base = (root.lower(), table[names[1]])
        return _with_path(_Expr(".".join(base), True, base), names[2:])
    raise _Refused(f"field .{root} is not known (use .Args, .Config, .Request or .Response)")


def _literal(kind: str, text: str) -> _Expr:
    if kind == "str":
        try:
            value = json.loads(text)
        except ValueError:
            raise _Refused(f"cannot read the string {text}") from None
        return _Expr(json.dumps(value, ensure_ascii=False), True, ("const", value))
    if kind == "raw":
        value = text[1:-1]
        return _Expr(json.dumps(value, ensure_ascii=False), True, ("const", value))
    if kind == "num":
        try:
            value = int(text.replace("_", ""), 0)
        except ValueError:
            value = float(text.replace("_", ""))
        return _Expr(repr(value), True, ("const", value), num=isinstance(value, int))
    raise _Refused(f"{text} is not supported")


def _const(expr: _Expr, what: str) -> Any:
    if not expr.path or expr.path[0] != "const":
        raise _Refused(f"{what} must be a literal")
    return expr.path[1]


def _is_const(expr: _Expr) -> bool:
    return bool(expr.path) and expr.path[0] == "const"


_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
# Sprig (and Go) functions with a direct Jinja spelling: name → (arguments, Jinja with {0}, {1}… as operands).
_SIMPLE = {
    "upper": (1, "{0} | upper"), "lower": (1, "{0} | lower"), "trim": (1, "{0} | trim"), "title": (1, "{0} | title"),
    "join": (2, "{1} | join({0})"), "replace": (3, "{2} | replace({0}, {1})"), "contains": (2, "{0} in {1}"),
    "hasPrefix": (2, "({1} | string).startswith({0})"), "hasSuffix": (2, "({1} | string).endswith({0})"),
    "trimPrefix": (2, "({1} | string).removeprefix({0})"), "trimSuffix": (2, "({1} | string).removesuffix({0})"),
    "splitList": (2, "({1} | string).split({0})"), "first": (1, "{0} | first"), "last": (1, "{0} | last"),
    "int": (1, "{0} | int"), "atoi": (1, "{0} | int"), "urlquery": (1, "{0} | urlencode"),
    "fromJSON": (1, "{0} | fromjson"), "fromJson": (1, "{0} | fromjson"), "toJson": (1, "{0} | tojson"),
}
_ARITHMETIC = {"add": "+", "sub": "-", "mul": "*"}
# What to write in Jinja for functions that do not translate by themselves (None: nothing in mcpgw's sandbox).
_WRITE_INSTEAD = {
    "quote": '{{ x | tojson }}', "squote": "{{ \"'\" ~ x ~ \"'\" }}", "toPrettyJson": "{{ x | tojson }}",
    "toString": "{{ x | string }}", "empty": "{{ not x }}", "coalesce": "{{ a or b or c }}",
    "ternary": "{{ a if cond else b }}", "dict": "{{ dict(key=value) }}", "list": "{{ [a, b] }}",
    "keys": "{{ m | list }}", "hasKey": '{{ "key" in m }}', "div": "{{ (a / b) | int }}", "mod": "{{ a % b }}",
    "max": "{{ [a, b] | max }}", "min": "{{ [a, b] | min }}", "repeat": "{{ x * n }}",
    "substr": "{{ x[start:end] }}", "trunc": "{{ x[:n] }}", "indent": "{{ x | indent(n) }}",
    "nindent": '{{ "\\n" ~ x | indent(n, true) }}', "split": "{{ x.split(sep) }}",
    "kindIs": "{{ x is string }}, {{ x is mapping }}, {{ x is sequence }}, {{ x is number }}",
    "html": "{{ x | escape }}", "slice": "{{ x[i:j] }}", "float64": "{{ x | float }}",
    "b64enc": None, "b64dec": None, "sha256sum": None, "sha1sum": None, "now": None, "date": None,
    "uuidv4": None, "randAlphaNum": None, "regexMatch": None, "js": None, "call": None,
}


def _refuse_function(name: str) -> _Refused:
    if name in _WRITE_INSTEAD and _WRITE_INSTEAD[name] is None:
        return _Refused(f"function {name!r} has no equivalent in mcpgw's Jinja templates; pass the value in "
                        "as an argument or a config value instead")
    instead = _WRITE_INSTEAD.get(name) or '{{ x | upper }} (Sprig\'s "upper .Args.x")'
    return _Refused(f"function {name!r} does not translate; write the Jinja that does the same instead, "
                    f"e.g. {instead}")


def _integer(expr: _Expr) -> str:
    """An operand of Sprig's arithmetic, which converts to int64 first."""
    return expr.operand() if expr.num else f"({expr.text} | int)"


_GO_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?(\[\d+\])?(.?)", re.DOTALL)


def _printf(args: list[_Expr]) -> _Expr:
    if not args:
        raise _Refused("printf takes a format and its values")
    fmt = _const(args[0], "printf's format")
    if not isinstance(fmt, str):
        raise _Refused("printf's format must be a string")
    values = args[1:]
    out: list[str] = []
    operands: list[str] = []
    pos = 0
    for match in _GO_VERB.finditer(fmt):
        out.append(fmt[pos:match.start()])
        pos = match.end()
        flags, width, precision, indexed, verb = match.groups()
        if verb == "%" and not (flags or width or precision or indexed):
            out.append("%%")
            continue
        if indexed or verb not in "sdvqtfFeEgGxXoc" or not verb:
            raise _Refused(f"printf's verb {match.group(0)!r} does not translate; write "
                           '{{ "%s, %d" | format(a, b) }} (Python\'s % verbs) or {{ a ~ ", " ~ b }} instead')
        if len(operands) == len(values):
            raise _Refused(f"printf's format {fmt!r} has more verbs than values")
        value = values[len(operands)]
        spec = f"%{flags}{width or ''}{'.' + precision if precision is not None else ''}"
        if verb in "qt":
            operands.append(f"{value.operand()} | tojson")
            out.append(spec + "s")
        elif verb == "v":
            operands.append(f"{value.operand()} | tojson if {value.operand()} is boolean else {value.operand()}")
            out.append(spec + "s")
        else:
            operands.append(value.text)
            out.append(spec + ("f" if verb == "F" else verb))
    out.append(fmt[pos:].replace("%", "%%"))
    if len(operands) != len(values):
        raise _Refused(f"printf's format {fmt!r} has fewer verbs than values")
    text = json.dumps("".join(out), ensure_ascii=False)
    return _Expr(f"{text} | format({', '.join(f'({o})' if ' ' in o else o for o in operands)})", False)


def _call(name: str, args: list[_Expr]) -> _Expr:
    def need(n: int, exact: bool = True) -> None:
        if (len(args) != n) if exact else (len(args) < n):
            raise _Refused(f"{name} takes {n}{'' if exact else ' or more'} argument(s), got {len(args)}")

    if name == "toJSON":
        need(1)
        return _Expr(f"{args[0].operand()} | tojson", False)
    if name == "env":
        need(1)
        return _Expr(f"env({json.dumps(_const(args[0], 'env name'))})", True)
    if name == "len":
        need(1)
        return _Expr(f"{args[0].operand()} | length", False, num=True)
    if name == "index":
        need(1, exact=False)
        got = args[0]
        for key in args[1:]:
            got = _with_path(got, [_const(key, "index key")]) if _is_const(key) \
                else _Expr(f"{got.operand()}[{key.text}]", True)
        return got
    if name in ("safeGet", "safeGetOr"):
        need(2 if name == "safeGet" else 3)
        path = _const(args[0], f"{name} path")
        segments = [int(s) if s.isdigit() else s for s in str(path).split(".") if s]
        got = _with_path(args[1], segments)
        if name == "safeGet":
            return got
        return _Expr(f"{got.text} | default({args[2].operand()})", False)
    if name == "not":
        need(1)
        return _Expr(f"not {args[0].operand()}", False)
    if name in ("and", "or"):
        need(2, exact=False)
        return _Expr(f" {name} ".join(a.operand() for a in args), False)
    if name in _COMPARE:
        need(2, exact=False)
        if name == "eq" and len(args) > 2:
            return _Expr(" or ".join(f"{args[0].operand()} == {a.operand()}" for a in args[1:]), False)
        need(2)
        return _Expr(f"{args[0].operand()} {_COMPARE[name]} {args[1].operand()}", False)
    if name in _ARITHMETIC:
        need(2, exact=name == "sub")
        return _Expr(f" {_ARITHMETIC[name]} ".join(_integer(a) for a in args), False, num=True)
    if name == "add1":
        need(1)
        return _Expr(f"{_integer(args[0])} + 1", False, num=True)
    if name == "default":  # Sprig: default DEFAULT VALUE, the default for any empty value
        need(2)
        return _Expr(f"{args[1].operand()} | default({args[0].text}, true)", False)
    if name == "printf":
        return _printf(args)
    if name == "print":
        need(1)
        return args[0]
    if name in _SIMPLE:
        count, pattern = _SIMPLE[name]
        need(count)
        return _Expr(pattern.format(*(a.operand() for a in args)), False)
    raise _refuse_function(name)


_RESERVED = {"args", "config", "request", "response", "env", "secrets", "loop", "range", "dict", "namespace",
             "lipsum", "cycler", "joiner", "self", "varargs", "kwargs", "caller"} | _JINJA_WORDS


class _Scope:
    """What names mean while one template is translated: '.', the Go variables, the open blocks."""

    def __init__(self) -> None:
        self.dot: _Expr | None = None  # None: the root, where .Args, .Config, .Request and .Response are
        self.frames: list[dict[str, tuple[str, int, bool]]] = [{}]  # $x → (Jinja name, Jinja scope depth, integer)
        self.blocks: list[dict[str, Any]] = []
        self.depth = 0  # Jinja scopes open (for, with): a {% set %} inside one does not reach outside
        self.used: set[str] = set()

    def fresh(self, base: str) -> str:
        if not _IDENT.match(base):
            base = "v" + base
        if base in _RESERVED or keyword.iskeyword(base):
            base += "_"
        name, n = base, 2
        while name in self.used:
            name, n = f"{base}{n}", n + 1
        self.used.add(name)
        return name

    def declare(self, go: str, *, num: bool = False) -> str:
        if go == "$":
            raise _Refused("'$' cannot be declared")
        name = self.fresh(go[1:])
        self.frames[-1][go] = (name, self.depth, num)
        return name

    def lookup(self, go: str) -> tuple[str, int, bool]:
        for frame in reversed(self.frames):
            if go in frame:
                return frame[go]
        raise _Refused(f"variable {go} is not declared before it is used (Go refuses it too)")


class _Parser:
    """Recursive-descent parser of one Go action's pipeline."""

    def __init__(self, tokens: list[tuple[str, str]], scope: _Scope):
        self.tokens = tokens
        self.pos = 0
        self.scope = scope

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def pipeline(self, closing: str | None = None) -> _Expr:
        value: _Expr | None = None
        while True:
            value = self.command(value)
            token = self.peek()
            if token is None or (closing and token == ("op", closing)):
                return value
            if token == ("op", "|"):
                self.take()
                continue
            raise _Refused(f"unexpected {token[1]!r}")

    def command(self, piped: _Expr | None) -> _Expr:
        token = self.peek()
        if token is None:
            raise _Refused("empty command")
        if token[0] == "ident" and token[1] not in ("true", "false", "nil"):
            self.take()
            args = []
            while self.peek() is not None and self.peek() not in (("op", "|"), ("op", ")")):
                args.append(self.operand())
            if piped is not None:
                args.append(piped)
            return _call(token[1], args)
        value = self.operand()
        if piped is not None:
            raise _Refused(f"cannot pipe into {value.text}")
        if self.peek() not in (None, ("op", "|"), ("op", ")")):
            raise _Refused(f"unexpected {self.peek()[1]!r} after {value.text}")
        return value

    def chained(self, base: _Expr) -> _Expr:
        if self.peek() is not None and self.peek()[0] == "chain":
            return _with_path(base, self.take()[1].split(".")[1:])
        return base

    def operand(self) -> _Expr:
        kind, text = self.take()
        if kind == "field":
            if self.scope.dot is None:
                return _field(text)
            return _with_path(self.scope.dot, text.split(".")[1:])
        if kind == "ident":
            if text in ("true", "false"):
                return _Expr(text, True, ("const", text == "true"))
            if text == "nil":
                return _Expr("none", True, ("const", None))
            return _call(text, [])
        if kind in ("str", "raw", "num"):
            return _literal(kind, text)
        if kind == "op" and text == "(":
            inner = self.pipeline(closing=")")
            if self.peek() != ("op", ")"):
                raise _Refused("missing ')'")
            self.take()
            return self.chained(_Expr(inner.text, inner.atom, inner.path, inner.num))
        if kind == "var":
            if text == "$":
                if self.peek() is None or self.peek()[0] != "chain":
                    raise _Refused("'$' alone (the whole context) does not translate; name a field such as "
                                   "$.Args.x ({{ args.x }})")
                return _field(self.take()[1])
            name, _depth, num = self.scope.lookup(text)
            return self.chained(_Expr(name, True, None, num))
        if kind == "dot":
            if self.scope.dot is None:
                raise _Refused("'.' alone (the whole context) does not translate; name a field such as .Args.x "
                               "({{ args.x }})")
            return self.scope.dot
        raise _Refused(f"unexpected {text!r}")


def _parse(tokens: list[tuple[str, str]], scope: _Scope) -> _Expr:
    if any(t[0] == "op" and t[1] in (":=", "=") for t in tokens):
        raise _Refused("a variable can only be declared in its own action ({{ $x := … }}) or a range; "
                       "write {% set x = … %} before the block instead")
    if not tokens:
        raise _Refused("a pipeline is missing")
    parser = _Parser(tokens, scope)
    expr = parser.pipeline()
    if parser.peek() is not None:
        raise _Refused(f"unexpected {parser.peek()[1]!r}")
    return expr


def _expression(tokens: list[tuple[str, str]], scope: _Scope) -> str:
    return _parse(tokens, scope).text


_REFUSED_KEYWORDS = {
    "define": "a template is one field in mcpgw; write the text in the field, or a {% macro name() %}…{% endmacro %}"
              " in the same field",
    "template": "a template is one field in mcpgw; write the text in the field, or call a {% macro %} of the same "
                "field",
    "block": "a template is one field in mcpgw; write the text in the field",
    "break": "mcpgw templates have no loop controls; filter the list instead: {% for x in items if cond %}",
    "continue": "mcpgw templates have no loop controls; filter the list instead: {% for x in items if cond %}",
}


def _escape_text(text: str) -> str:
    if "{%" in text or "{#" in text or "{{" in text:
        if "endraw" in text:
            return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"
        return "{% raw %}" + text + "{% endraw %}"
    return text


def translate(text: str, *, where: str = "") -> str:
    """Translate one Go template (Unla's spelling) to Jinja.

    Raises :class:`TemplateError` naming ``where``, the text, the line, the construct and the Jinja to
    write instead when it cannot be translated (``define``, ``break``, Sprig functions without a Jinja
    spelling, …).

    >>> translate("{{range $i, $x := fromJSON .Args.tags}}{{if $i}},{{end}}{{$x.id}}{{end}}")
    '{% for x in args.tags | fromjson %}{% set i = loop.index0 %}{% if i %},{% endif %}{{ x.id }}{% endfor %}'
    """
    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text
    try:
        return _translate(text)
    except _Refused as exc:
        prefix = f"{where}: " if where else ""
        raise TemplateError(f"{prefix}cannot translate {text!r}: {exc}") from None


def _translate(text: str) -> str:
    out: list[str] = []
    scope = _Scope()
    for kind, piece, left, right, line in _split_actions(text):
        if kind == "text":
            out.append(_escape_text(piece))
            continue
        try:
            _action(piece, left, right, scope, out, line)
        except _Refused as exc:
            raise _Refused(f"line {line}: {{{{ {piece} }}}}: {exc}") from None
    if scope.blocks:
        block = scope.blocks[-1]
        raise _Refused(f"line {block['line']}: '{block['kind']}' without 'end'")
    return "".join(out)


def _declared(tokens: list[tuple[str, str]]) -> tuple[list[str], list[tuple[str, str]]]:
    """``$i, $x := pipeline`` → (["$i", "$x"], pipeline tokens); no declaration → ([], tokens)."""
    names: list[str] = []
    i = 0
    while i < len(tokens) and tokens[i][0] == "var":
        names.append(tokens[i][1])
        i += 1
        if i < len(tokens) and tokens[i] == ("op", ","):
            i += 1
            continue
        break
    if names and i < len(tokens) and tokens[i] == ("op", ":="):
        if len(names) > 2:
            raise _Refused("at most two variables ($i, $x) can be declared")
        return names, tokens[i + 1:]
    return [], tokens


def _open(scope: _Scope, kind: str, line: int, scoped: bool) -> dict[str, Any]:
    block = {"kind": kind, "line": line, "dot": scope.dot, "scoped": scoped, "else": False}
    scope.blocks.append(block)
    scope.frames.append({})
    if scoped:
        scope.depth += 1
    return block


def _action(piece: str, left: str, right: str, scope: _Scope, out: list[str], line: int) -> None:
    """Translate one Go action, appending Jinja to ``out``."""
    if piece.startswith("/*"):
        out.append(f"{{#{left} {piece[2:-2].strip()} {right}#}}")
        return
    tokens = _tokens(piece)
    if not tokens:
        raise _Refused("an empty action does not translate; remove it")
    head = tokens[0]
    if head[0] == "ident" and head[1] in _REFUSED_KEYWORDS:
        raise _Refused(f"'{head[1]}' does not translate: {_REFUSED_KEYWORDS[head[1]]}")
    if head[0] == "var" and len(tokens) > 1 and tokens[1] in (("op", ":="), ("op", "=")):
        expr = _parse(tokens[2:], scope)
        if tokens[1][1] == ":=":
            name = scope.declare(head[1], num=expr.num)
        else:
            name, depth, _num = scope.lookup(head[1])
            if depth < scope.depth:
                raise _Refused(f"assigning {head[1]} inside a range or with, declared outside it, does not translate "
                               f"(Jinja's set stays inside the loop); write {{% set ns = namespace({name}=…) %}} "
                               f"before the loop, {{% set ns.{name} = … %}} inside it and {{{{ ns.{name} }}}} after")
        out.append(f"{{%{left} set {name} = {expr.text} {right}%}}")
    elif head == ("ident", "if"):
        condition = _expression(tokens[1:], scope)
        _open(scope, "if", line, scoped=False)
        out.append(f"{{%{left} if {condition} {right}%}}")
    elif head == ("ident", "range"):
        names, pipeline = _declared(tokens[1:])
        iterable = _parse(pipeline, scope)
        _open(scope, "range", line, scoped=True)
        element = scope.declare(names[-1]) if names else scope.fresh("item")
        scope.dot = _Expr(element)
        if len(names) == 2:
            index = scope.declare(names[0], num=True)
            out.append(f"{{%{left} for {element} in {iterable.text} %}}{{% set {index} = loop.index0 {right}%}}")
        else:
            out.append(f"{{%{left} for {element} in {iterable.text} {right}%}}")
    elif head == ("ident", "with"):
        names, pipeline = _declared(tokens[1:])
        if len(names) > 1:
            raise _Refused("with declares one variable")
        value = _parse(pipeline, scope)
        _open(scope, "with", line, scoped=True)
        name = scope.declare(names[0]) if names else scope.fresh("item")
        scope.dot = _Expr(name)
        out.append(f"{{%{left} with {name} = {value.text} %}}{{% if {name} {right}%}}")
    elif head == ("ident", "else"):
        if not scope.blocks:
            raise _Refused("'else' without 'if', 'range' or 'with'")
        block = scope.blocks[-1]
        if block["else"]:
            raise _Refused(f"a second 'else' in the '{block['kind']}' of line {block['line']}")
        if len(tokens) > 1:
            if tokens[1] != ("ident", "if") or block["kind"] != "if":
                raise _Refused(f"'else {tokens[1][1]}' does not translate; write {{% else %}}{{% if … %}}…"
                               "{% endif %} inside the else instead")
            out.append(f"{{%{left} elif {_expression(tokens[2:], scope)} {right}%}}")
            return
        # Go: in the else of a range or with, '.' and the variables are the ones from before the block.
        block["else"] = True
        scope.dot = block["dot"]
        scope.frames[-1] = {}
        out.append(f"{{%{left} else {right}%}}")
    elif head == ("ident", "end"):
        if len(tokens) > 1:
            raise _Refused(f"unexpected {tokens[1][1]!r} after 'end'")
        if not scope.blocks:
            raise _Refused("'end' without 'if', 'range' or 'with'")
        block = scope.blocks.pop()
        scope.frames.pop()
        scope.dot = block["dot"]
        if block["scoped"]:
            scope.depth -= 1
        if block["kind"] == "if":
            out.append(f"{{%{left} endif {right}%}}")
        elif block["kind"] == "range":
            out.append(f"{{%{left} endfor {right}%}}")
        else:
            out.append(f"{{%{left} endif %}}{{% endwith {right}%}}")
    else:
        out.append(f"{{{{{left} {_expression(tokens, scope)} {right}}}}}")


def is_unla(content: dict) -> bool:
    """Whether a document uses Unla's Go-template spellings (``{{.Args.x}}``, ``{{ env "X" }}``, …)."""
    if not isinstance(content, dict):
        return False
    return any(_GO_HINT.search(container[k]) for _p, container, k in iter_templates(content))


def _label(content: dict) -> str:
    return f"{content.get('tenant') or DEFAULT_TENANT}/{content.get('name') or '?'}"


def from_unla(content: dict) -> dict:
    """An Unla document as ours: every template field translated, Unla's timestamps dropped.

    Raises :class:`TemplateError` listing every field that does not translate.
    """
    if not isinstance(content, dict):
        raise TemplateError(f"an Unla document is a mapping, got {type(content).__name__}")
    doc = {k: copy.deepcopy(v) for k, v in content.items() if k not in UNLA_DROPPED}
    doc.setdefault("tenant", "default")
    errors = []
    label = _label(doc)
    for path, container, k in iter_templates(doc):
        try:
            container[k] = translate(container[k], where=f"{label}: {path}")
        except TemplateError as exc:
            errors.append(str(exc))
    if errors:
        raise TemplateError(errors[0], errors)
    for tool in doc.get("tools") or []:
        _multipart_form(tool)
    return doc


def _multipart_form(tool: Any) -> None:
    """Unla sends ``form-data`` arguments as ``multipart/form-data``: say so with the tool's Content-Type.

    Ours send them urlencoded unless the tool's headers ask for multipart, so the translation asks, replacing
    another Content-Type as Unla does (a tool with a ``requestBody`` sends that body, and keeps its headers).
    """
    if not isinstance(tool, dict) or tool.get("requestBody") not in (None, ""):
        return
    if not any(isinstance(a, dict) and a.get("position") == "form-data" for a in tool.get("args") or []):
        return
    headers = tool.get("headers") if isinstance(tool.get("headers"), dict) else {}
    headers = {k: v for k, v in headers.items() if str(k).lower() != "content-type"}
    headers["Content-Type"] = "multipart/form-data"
    tool["headers"] = headers


def _env_refusals(doc: dict) -> list[str]:
    from .templates import forbidden_env

    label = _label(doc)
    lines = []
    for path, container, k in iter_templates(doc):
        reason = forbidden_env(str(container[k]), field=path)
        if reason:
            lines.append(f"{label}: {reason}; the gateway refuses it at every call of what reads it, so the "
                         "import is refused (allow the name in MCPGW_TEMPLATE_ENV, or change the template)")
    return lines


def wrong_format(content: dict) -> list[str]:
    """Template fields of a document imported as ours that are written in Unla's Go templates.

    One ``tenant/name: path: text`` line each: the field does not parse as Jinja and holds a Go-template
    marker (``{{.Args.``, ``{{ .Config``, ``{{ env "X" }}``, ``{{ $x := …}}``, …).
    """
    from .templates import check_template

    if not isinstance(content, dict):
        return []
    label = _label(content)
    found = []
    for path, container, k in iter_templates(content):
        text = str(container[k])
        marker = _GO_HINT.search(text)
        if marker and check_template(text) is not None:
            found.append(f"{label}: {path}: {text[marker.start():marker.start() + 40]!r}")
    return found


def import_document(content: Any, *, format: str | None = None, option: str = 'format="unla"') -> dict:
    """One document read for import, as ours: every import (CLI, API, console, SDK) goes through here.

    ``format`` ``"unla"`` translates Unla's Go templates (:func:`from_unla`) and refuses a document whose
    templates read ``env()`` names the ``template_env`` setting does not allow (they would fail at every
    call); ``"mcpgw"`` keeps the document as it is but refuses one written in Unla's spelling, saying to
    import it with ``option`` (``--format unla`` in the CLI); ``None`` (or ``"auto"``) detects Unla documents.

    >>> import_document({"name": "a", "tools": [{"name": "t", "endpoint": "http://h/{{.Args.x}}"}]},
    ...                 format="mcpgw", option="--format unla")
    Traceback (most recent call last):
    ...
    mcpgw_sdk.errors.ConfigError: default/a: tools[0].endpoint: '{{.Args.x}}': this looks like Unla's format (Go templates); use --format unla
    """
    if not isinstance(content, dict):
        raise ConfigError(f"a document is a mapping, got {type(content).__name__}")
    if format in (None, "auto"):
        format = "unla" if is_unla(content) else "mcpgw"
    if format == "mcpgw":
        spots = wrong_format(content)
        if spots:
            raise wrong_format_error(spots, option)
        return content
    if format != "unla":
        raise ConfigError(f"format: {format!r} is not one of mcpgw, unla")
    doc = from_unla(content)
    refusals = _env_refusals(doc)
    if refusals:
        raise TemplateError(refusals[0], refusals)
    return doc


def wrong_format_error(spots: list[str], option: str) -> ConfigError:
    """The error of :func:`import_document` for ``spots`` (from :func:`wrong_format`), naming ``option``."""
    lines = [f"{spot}: this looks like Unla's format (Go templates); use {option}" for spot in spots]
    error = ConfigError(lines[0], lines)
    error.unla_spots = spots  # type: ignore[attr-defined]
    return error


# -- Jinja → Go ------------------------------------------------------------

_GO_ROOTS = {"args": ".Args", "config": ".Config"}
_GO_REQUEST = {v: k for k, v in _REQUEST.items()}
_GO_RESPONSE = {v: k for k, v in _RESPONSE.items()}
_GO_COMPARE = {"eq": "eq", "ne": "ne", "lt": "lt", "lteq": "le", "gt": "gt", "gteq": "ge"}


def _canonical_header(name: str) -> str:
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _go_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _chain(node: nodes.Node) -> tuple[str, list[Any]] | None:
    """``args.a["b"][0]`` → ``("args", ["a", "b", 0])``; ``None`` for other nodes."""
    segments: list[Any] = []
    while True:
        if isinstance(node, nodes.Getattr):
            segments.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) \
                and isinstance(node.arg.value, (str, int)) and not isinstance(node.arg.value, bool):
            segments.append(node.arg.value)
            node = node.node
        elif isinstance(node, nodes.Name):
            return node.name, segments[::-1]
        else:
            return None


def _go_path(root: str, segments: list[Any]) -> str:
    if root in _GO_ROOTS:
        base, rest = _GO_ROOTS[root], segments
    elif root in ("request", "response") and segments:
        table = _GO_REQUEST if root == "request" else _GO_RESPONSE
        if not isinstance(segments[0], str) or segments[0] not in table:
            raise _Refused(f"{root}.{segments[0]} has no Unla spelling")
        base, rest = f".{root.capitalize()}.{table[segments[0]]}", list(segments[1:])
        if root == "request" and segments[0] == "headers" and rest and isinstance(rest[0], str):
            rest[0] = _canonical_header(rest[0])
    else:
        raise _Refused(f"{root!r} has no Unla spelling")
    if all(isinstance(s, str) and _IDENT.match(s) for s in rest):
        return base + "".join("." + s for s in rest)
    if base == ".Response.Data" and all(isinstance(s, int) or "." not in s for s in rest):
        return f"safeGet {_go_string('.'.join(str(s) for s in rest))} {base}"
    head = 0
    while head < len(rest) and isinstance(rest[head], str) and _IDENT.match(rest[head]):
        head += 1
    keys = " ".join(_go_string(s) if isinstance(s, str) else str(s) for s in rest[head:])
    return f"index {base}{''.join('.' + s for s in rest[:head])} {keys}"


def _go_operand(node: nodes.Node) -> str:
    text = _go_expr(node)
    return text if isinstance(node, nodes.Const) or " " not in text else f"({text})"


def _flatten(node: nodes.Node, cls: type) -> list[nodes.Node]:
    if isinstance(node, cls):
        return _flatten(node.left, cls) + _flatten(node.right, cls)
    return [node]


def _go_expr(node: nodes.Node) -> str:
    chain = _chain(node)
    if chain is not None:
        return _go_path(*chain)
    if isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, bool):
            return "true" if value else "false"
        if value is None:
            return "nil"
        if isinstance(value, str):
            return _go_string(value)
        return repr(value)
    if isinstance(node, nodes.Filter) and not node.kwargs and node.node is not None:
        if node.name == "tojson" and not node.args:
            return f"toJSON {_go_operand(node.node)}"
        if node.name == "length" and not node.args:
            return f"len {_go_operand(node.node)}"
        if node.name == "default" and len(node.args) == 1:
            chain = _chain(node.node)
            if chain and chain[0] == "response" and chain[1][:1] == ["data"] and len(chain[1]) > 1:
                path = ".".join(str(s) for s in chain[1][1:])
                return f"safeGetOr {_go_string(path)} .Response.Data {_go_operand(node.args[0])}"
        raise _Refused(f"the filter {node.name!r} has no Unla spelling here")
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "env" \
            and len(node.args) == 1 and isinstance(node.args[0], nodes.Const) and not node.kwargs:
        return f"env {_go_string(str(node.args[0].value))}"
    if isinstance(node, nodes.Not):
        return f"not {_go_operand(node.node)}"
    if isinstance(node, (nodes.And, nodes.Or)):
        word = "and" if isinstance(node, nodes.And) else "or"
        return f"{word} " + " ".join(_go_operand(n) for n in _flatten(node, type(node)))
    if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _GO_COMPARE:
        return f"{_GO_COMPARE[node.ops[0].op]} {_go_operand(node.expr)} {_go_operand(node.ops[0].expr)}"
    raise _Refused(f"{type(node).__name__} expressions have no Unla spelling")


def _go_body(body: list[nodes.Node], out: list[str]) -> None:
    for node in body:
        if isinstance(node, nodes.Output):
            for child in node.nodes:
                if isinstance(child, nodes.TemplateData):
                    out.append(child.data.replace("{{", '{{"{{"}}'))
                else:
                    out.append("{{ " + _go_expr(child) + " }}")
        elif isinstance(node, nodes.If):
            out.append("{{if " + _go_expr(node.test) + "}}")
            _go_body(node.body, out)
            for elif_ in node.elif_:
                out.append("{{else if " + _go_expr(elif_.test) + "}}")
                _go_body(elif_.body, out)
            if node.else_:
                out.append("{{else}}")
                _go_body(node.else_, out)
            out.append("{{end}}")
        else:
            raise _Refused(f"{{% {type(node).__name__.lower()} %}} has no Unla spelling")


def _join_go(pieces: list[str]) -> str:
    # Text ending in "{" right before an action would read as "{{{": emit that brace as an action.
    out = []
    for i, piece in enumerate(pieces):
        if piece.endswith("{") and not piece.startswith("{{") and i + 1 < len(pieces) \
                and pieces[i + 1].startswith("{{"):
            piece = piece[:-1] + '{{"{"}}'
        out.append(piece)
    return "".join(out)


def _to_go(text: str, where: str) -> str:
    from .templates import _ENV

    if "{{" not in text and "{%" not in text and "{#" not in text:
        return text
    try:
        tree = _ENV.parse(text)
        out: list[str] = []
        _go_body(tree.body, out)
        return _join_go(out)
    except (_Refused, TemplateSyntaxError) as exc:
        prefix = f"{where}: " if where else ""
        raise TemplateError(f"{prefix}cannot express {text!r} in Unla's templates: {exc}") from None


def to_unla(content: dict) -> dict:
    """Our document in Unla's spelling (the reverse of :func:`from_unla`).

    Raises :class:`TemplateError` listing every field whose template has no Unla spelling.
    """
    doc = copy.deepcopy(content)
    errors = []
    label = _label(doc)
    for path, container, k in iter_templates(doc):
        try:
            container[k] = _to_go(container[k], f"{label}: {path}")
        except TemplateError as exc:
            errors.append(str(exc))
    if errors:
        raise TemplateError(errors[0], errors)
    return doc
