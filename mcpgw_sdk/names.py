"""The one rule for names, and for text that reaches a database column.

Every named object — documents, tenants, users, API keys, the servers inside a
document — follows :func:`name_problem`: 1 to :data:`NAME_MAX` characters, no
``/``, no ``..``, no control characters (NUL included), no line or paragraph
separators, no lone surrogates, no leading or trailing blank. :data:`NAME_MAX`
fits the smallest name column (``VARCHAR(100)``) on SQLite, PostgreSQL and
MySQL/MariaDB (utf8mb4, inside every index limit). Tenants and users keep a
stricter alphabet on top (they appear in URLs and logs): :func:`account_problem`.

Any other text that is stored (descriptions, document content) must hold no NUL
(PostgreSQL refuses it) and no lone surrogate (no database can encode it):
:func:`text_errors` walks a whole structure and names each bad field.

>>> name_problem("users") is None
True
>>> name_problem("a/b")
"must not contain '/'"
>>> text_errors({"a": ["ok", "x" + chr(0)]})
['a[1]: must not contain NUL (\\\\x00) or lone surrogates']
"""

from __future__ import annotations

import re
from typing import Any

from .errors import ConfigError

__all__ = ["NAME_MAX", "account_problem", "check_account", "check_name", "name_problem", "shown", "text_errors"]

NAME_MAX = 100  #: characters in any name (the smallest name column holds 100)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_ACCOUNT = re.compile(r"^[A-Za-z0-9_.@-]+$")
#: strings :func:`text_errors` looks at before giving up (a body is bounded by its size already)
_MAX_ERRORS = 20


def shown(value: Any, limit: int = 40) -> str:
    """``repr`` of a value cut to ``limit`` characters: safe in messages (control characters escaped)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def name_problem(value: Any, *, max_length: int = NAME_MAX) -> str | None:
    """Why ``value`` is not a valid name, or ``None`` when it is."""
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters (got {len(value)})"
    bad = _SURROGATE.search(value)
    if bad:
        return "must not contain lone surrogates"
    bad = _CONTROL.search(value)
    if bad:
        return f"must not contain control characters (found {bad.group()!r})"
    if "/" in value:
        return "must not contain '/'"
    if ".." in value or value == ".":
        return "must not be '.' or contain '..'"
    if value != value.strip():
        return "must not begin or end with a blank"
    return None


def check_name(field: str, value: Any, *, max_length: int = NAME_MAX) -> str:
    """Return ``value`` when it is a valid name, else raise :class:`ConfigError` naming ``field``."""
    problem = name_problem(value, max_length=max_length)
    if problem:
        raise ConfigError(f"{field}: {shown(value)} {problem}")
    return value


def account_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid tenant or user name (the name rule, letters, digits, ``_ . - @``)."""
    problem = name_problem(value)
    if problem:
        return problem
    if not _ACCOUNT.match(value):
        return "must hold only letters, digits, '_', '.', '-', '@'"
    return None


def check_account(field: str, value: Any) -> str:
    """Return ``value`` when it is a valid tenant or user name, else raise :class:`ConfigError`."""
    problem = account_problem(value)
    if problem:
        raise ConfigError(f"{field}: {shown(value)} {problem}")
    return value


def _surely_clean(data: Any) -> bool:
    """True when no string of ``data`` can hold NUL or a lone surrogate: one C-speed scan of its JSON text
    (a document of 500 tools has ~15,000 strings; building each one's path costs more than the scan).
    ``False`` means "walk it": JSON writes NUL as ``\\u0000``, which a literal backslash-u0000 also matches."""
    import json

    try:
        text = json.dumps(data, ensure_ascii=False, check_circular=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return False
    return "\\u0000" not in text and _UNSTORABLE.search(text) is None


def text_errors(data: Any, path: str = "") -> list[str]:
    """``path: reason`` for each string (key or value) in ``data`` holding NUL or a lone surrogate.

    Walks without recursion, so deeply nested input cannot exhaust the stack.
    """
    if _surely_clean(data):
        return []
    errors: list[str] = []
    stack: list[tuple[str, Any]] = [(path, data)]
    while stack and len(errors) < _MAX_ERRORS:
        where, value = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                errors.append(f"{where or 'body'}: must not contain NUL (\\x00) or lone surrogates")
        elif isinstance(value, dict):
            for k, v in value.items():
                sub = f"{where}.{k}" if where else str(k)
                if isinstance(k, str) and _UNSTORABLE.search(k):
                    errors.append(f"{where or 'body'}: key {shown(k)} must not contain NUL or lone surrogates")
                    continue
                stack.append((sub, v))
        elif isinstance(value, (list, tuple)):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))
    return sorted(errors)
