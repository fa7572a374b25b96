"""Unla's documents: translate their Go templates to our Jinja templates and back.

Unla (the Go MCP gateway whose document shape mcpgw keeps) writes templates in
Go's ``text/template``: ``{{.Args.email}}``, ``{{ toJSON .Args.tags }}``,
``{{ env "TOKEN" }}``. :func:`translate` turns one such template into Jinja;
:func:`from_unla` does it for every template field of a document;
:func:`to_unla` goes back for the forms that have an Unla spelling.

>>> translate('Bearer {{ env "TOKEN" }} {{.Args.tags | toJSON}}')
'Bearer {{ env("TOKEN") }} {{ args.tags | tojson }}'

What does not translate (``range``, ``with``, variables, Sprig functions other than
those listed in ``docs/config-format.md``) is refused with the field, the text and
the reason, so nothing half-works. Go's ``{{-``/``-}}`` whitespace trimming becomes
Jinja's ``{{-``/``{%-``/``-}}``/``-%}``, which trims the same way.
"""

from __future__ import annotations

import copy
import json
import keyword
import re
from typing import Any

from jinja2 import TemplateSyntaxError, nodes

from .documents import UNLA_DROPPED, iter_templates
from .errors import TemplateError

__all__ = ["from_unla", "is_unla", "to_unla", "translate"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_JINJA_WORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"}
_GO_HINT = re.compile(
    r"\{\{-?\s*(?:\.[A-Za-z]|(?:if|else|end|range|with|toJSON|fromJSON|env|index|safeGet|safeGetOr|len)\b(?!\s*\())")


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
        if m.lastgroup == "field" and out and out[-1] == ("op", ")") and action[m.start() - 1] == ")":
            out.append(("chain", m.group()))  # (pipeline).Field, unlike (pipeline) .Field
        elif m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


# -- Go expressions → Jinja expressions ----------------------------------

class _Expr:
    """A Jinja expression text and whether it needs parentheses when used as an operand."""

    __slots__ = ("text", "atom", "path")

    def __init__(self, text: str, atom: bool = True, path: tuple | None = None):
        self.text, self.atom, self.path = text, atom, path

    def operand(self) -> str:
        return self.text if self.atom else f"({self.text})"


def _subscript(base: str, segment: Any) -> str:
    if isinstance(segment, int):
        return f"{base}[{segment}]"
    if _IDENT.match(segment) and segment not in _JINJA_WORDS and not keyword.iskeyword(segment):
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
        return _Expr(repr(value), True, ("const", value))
    raise _Refused(f"{text} is not supported")


def _const(expr: _Expr, what: str) -> Any:
    if not expr.path or expr.path[0] != "const":
        raise _Refused(f"{what} must be a literal")
    return expr.path[1]


_COMPARE = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}
_FUNCTIONS = ("toJSON", "env", "index", "safeGet", "safeGetOr", "len", "not", "and", "or", *_COMPARE)


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
        return _Expr(f"{args[0].operand()} | length", False)
    if name == "index":
        need(1, exact=False)
        return _with_path(args[0], [_const(a, "index key") for a in args[1:]])
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
    raise _Refused(f"function {name!r} is not supported (supported: {', '.join(_FUNCTIONS)})")


class _Parser:
    """Recursive-descent parser of one Go action's pipeline."""

    def __init__(self, tokens: list[tuple[str, str]]):
        self.tokens = tokens
        self.pos = 0

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

    def operand(self) -> _Expr:
        kind, text = self.take()
        if kind == "field":
            return _field(text)
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
            if self.peek() is not None and self.peek()[0] == "chain":
                return _with_path(inner, self.take()[1].split(".")[1:])
            return _Expr(inner.text, inner.atom, inner.path)
        if kind == "var":
            raise _Refused(f"variables ({text}) are not supported")
        if kind == "dot":
            raise _Refused("'.' alone (the whole context) is not supported; name a field such as .Args.x")
        raise _Refused(f"unexpected {text!r}")


def _expression(tokens: list[tuple[str, str]]) -> str:
    if any(t[0] == "op" and t[1] in (":=", "=") for t in tokens):
        raise _Refused("variable assignments are not supported")
    parser = _Parser(tokens)
    expr = parser.pipeline()
    if parser.peek() is not None:
        raise _Refused(f"unexpected {parser.peek()[1]!r}")
    return expr.text


_UNSUPPORTED_KEYWORDS = ("range", "with", "define", "template", "block", "break", "continue")


def _escape_text(text: str) -> str:
    if "{%" in text or "{#" in text or "{{" in text:
        if "endraw" in text:
            return "{{ " + json.dumps(text, ensure_ascii=False) + " }}"
        return "{% raw %}" + text + "{% endraw %}"
    return text


def translate(text: str, *, where: str = "") -> str:
    """Translate one Go template (Unla's spelling) to Jinja.

    Raises :class:`TemplateError` naming ``where``, the text and the reason when it
    cannot be translated (``range``, ``with``, variables, unsupported functions).
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
    stack: list[int] = []
    for kind, piece, left, right, line in _split_actions(text):
        if kind == "text":
            out.append(_escape_text(piece))
            continue
        try:
            _action(piece, left, right, stack, out, line)
        except _Refused as exc:
            raise _Refused(f"line {line}: {exc}") from None
    if stack:
        raise _Refused(f"line {stack[-1]}: 'if' without 'end'")
    return "".join(out)


def _action(piece: str, left: str, right: str, stack: list[int], out: list[str], line: int) -> None:
    """Translate one Go action, appending Jinja to ``out``; ``stack`` holds the lines of open ifs."""
    if piece.startswith("/*"):
        out.append(f"{{#{left} {piece[2:-2].strip()} {right}#}}")
        return
    tokens = _tokens(piece)
    if not tokens:
        raise _Refused("empty action '{{}}'")
    head = tokens[0]
    if head[0] == "ident" and head[1] in _UNSUPPORTED_KEYWORDS:
        raise _Refused(f"'{head[1]}' is not supported; only if/else/end, fields and the functions"
                       f" {', '.join(_FUNCTIONS)} translate")
    if head == ("ident", "if"):
        stack.append(line)
        out.append(f"{{%{left} if {_expression(tokens[1:])} {right}%}}")
    elif head == ("ident", "else"):
        if not stack:
            raise _Refused("'else' without 'if'")
        if len(tokens) > 1:
            if tokens[1] != ("ident", "if"):
                raise _Refused(f"'else {tokens[1][1]}' is not supported")
            out.append(f"{{%{left} elif {_expression(tokens[2:])} {right}%}}")
        else:
            out.append(f"{{%{left} else {right}%}}")
    elif head == ("ident", "end"):
        if not stack:
            raise _Refused("'end' without 'if'")
        stack.pop()
        out.append(f"{{%{left} endif {right}%}}")
    else:
        out.append(f"{{{{{left} {_expression(tokens)} {right}}}}}")


def is_unla(content: dict) -> bool:
    """Whether a document uses Unla's Go-template spellings (``{{.Args.x}}``, ``{{ env "X" }}``, …)."""
    if not isinstance(content, dict):
        return False
    return any(_GO_HINT.search(container[k]) for _p, container, k in iter_templates(content))


def _label(content: dict) -> str:
    return f"{content.get('tenant') or 'default'}/{content.get('name') or '?'}"


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
    return doc


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
