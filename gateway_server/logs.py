"""Logging setup: JSON lines or text, with a request id when one is known.

``log_format`` ``auto`` (the default) writes text to a terminal and JSON lines
anywhere else (a file, a pipe, a container's log collector).

Every line is passed through :func:`mcpgw_sdk.redact.redact_text` on its way out: URLs
lose their user info and query values wherever a message or traceback quotes them.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from mcpgw_sdk.redact import redact_text


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and ``request_id``/``session_id`` when given as extra."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for key in ("request_id", "session_id", "prefix", "method", "url", "endpoints", "workers"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        out["msg"] = redact_text(out["msg"])
        if record.exc_info:
            out["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """``asctime level logger message`` lines, with URLs redacted."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as text."""
        return redact_text(super().format(record))


def resolve(fmt: str) -> str:
    """``json`` or ``text``: ``auto`` is text when standard error is a terminal, json otherwise."""
    if fmt == "auto":
        isatty = getattr(sys.stderr, "isatty", None)
        return "text" if isatty is not None and isatty() else "json"
    return fmt


def setup(*, level: str = "INFO", fmt: str = "auto") -> str:
    """Configure the ``mcpgw`` loggers once (entry points only); return the format used, ``json`` or ``text``."""
    fmt = resolve(fmt)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("mcpgw")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    return fmt
