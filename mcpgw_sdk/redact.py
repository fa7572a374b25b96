"""Hiding credentials in URLs and in texts that may quote URLs (logs, errors, status pages).

A URL keeps its scheme, host, port and path; its user info becomes ``***`` and every
query value becomes ``***`` (query parameter names stay, so the reader can still tell
which URL it was). Free text gets the same treatment for every URL it contains, plus
any ``?name=value``/``&name=value`` pair and ``//user:password@`` it quotes without a
scheme (``urllib3`` quotes paths that way).

>>> redact_url("https://user:secret@api.example:8443/mcp?token=abc&x=1#frag")
'https://***@api.example:8443/mcp?token=***&x=***'
>>> redact_text("GET http://u:p@h/x?key=k failed; url: /mcp?token=abc (refused)")
'GET http://***@h/x?key=*** failed; url: /mcp?token=*** (refused)'
>>> redact_json({"url": "http://u:p@h/", "n": [1, "x?token=t"]})
{'url': 'http://***@h/', 'n': [1, 'x?token=***']}

Tokens embedded in a URL's path (``/bot<token>/``) are not recognised as secrets, except the
per-user secrets this process decrypted (:func:`remember_secret`): those are masked wherever
:func:`redact_text` runs (logs, error texts, status pages).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_json", "redact_text", "redact_url", "remember_secret"]

MASK = "***"
_URL = re.compile(r"""(?i)\b[a-z][a-z0-9+.-]*://[^\s'"<>`]+""")
_USERINFO = re.compile(r"//[^/\s@'\"<>]*@")
_QUERY_PAIR = re.compile(r"""([?&;][^=&\s'"<>#]*=)[^&\s'"<>#)]*""")
_MAX_DEPTH = 64
#: Secret values this process decrypted (per-user secrets), masked by every redact_text; newest last.
_known: dict[str, None] = {}
_KNOWN_MAX = 1024


def remember_secret(value: str) -> None:
    """Mask ``value`` (4 characters or more) in every later :func:`redact_text` of this process."""
    if not isinstance(value, str) or len(value) < 4 or value in _known:
        return
    _known[value] = None
    while len(_known) > _KNOWN_MAX:
        try:
            _known.pop(next(iter(_known)))
        except (StopIteration, KeyError, RuntimeError):  # another thread trimmed it first
            break


def redact_url(url: str) -> str:
    """``url`` with user info and query values replaced by ``***`` and without its fragment."""
    text = str(url)
    try:
        parts = urlsplit(text)
    except ValueError:
        return _USERINFO.sub("//" + MASK + "@", _QUERY_PAIR.sub(r"\1" + MASK, text))
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = _QUERY_PAIR.sub(r"\1" + MASK, "?" + parts.query)[1:] if parts.query else ""
    if parts.query and "=" not in parts.query:
        query = MASK  # a bare ?token
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_text(text: str, secrets: tuple[str, ...] | list[str] = ()) -> str:
    """``text`` with every URL in it redacted (see :func:`redact_url`), and each of ``secrets`` (if any) masked."""
    text = str(text)
    if "//" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
        text = _USERINFO.sub("//" + MASK + "@", text)
    if "=" in text:
        text = _QUERY_PAIR.sub(r"\1" + MASK, text)
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, MASK)
    if _known:
        for secret in sorted([s for s in list(_known) if s in text], key=len, reverse=True):
            text = text.replace(secret, MASK)
    return text


def redact_json(value: Any, _depth: int = 0) -> Any:
    """A copy of the JSON-like ``value`` with every string (keys included) passed through :func:`redact_text`.

    Nesting deeper than 64 levels is replaced by ``***`` (what cannot be checked is not shown).
    """
    if isinstance(value, str):
        return redact_text(value)
    if _depth >= _MAX_DEPTH and isinstance(value, (dict, list, tuple)):
        return MASK
    if isinstance(value, dict):
        return {(redact_text(k) if isinstance(k, str) else k): redact_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_json(item, _depth + 1) for item in value]
    return value
