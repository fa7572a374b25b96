"""Logging setup: JSON lines (default) or text, with a request id when one is known."""

from __future__ import annotations

import json
import logging
import sys
import time


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and ``request_id``/``session_id`` when given as extra."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        out = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
               "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        for key in ("request_id", "session_id", "prefix", "method"):
            value = getattr(record, key, None)
            if value is not None:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(*, level: str = "INFO", fmt: str = "json") -> None:
    """Configure the ``mcpgw`` loggers once (entry points only)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger("mcpgw")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
