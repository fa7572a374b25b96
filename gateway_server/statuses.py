"""HTTP status lines with their standard reason phrases, for every response the gateway and the API send.

The MCP transports write status lines themselves (:func:`status_line`); Flask answers the
rest, and werkzeug spells its phrases in capitals (``404 NOT FOUND``), so its apps are
wrapped by :func:`standard_reasons`.

>>> status_line(401)
'401 Unauthorized'
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

__all__ = ["standard_reasons", "status_line"]

#: Every status line, built once: the standard reason phrase of each code (RFC 9110's names where
#: Python's table still has older ones, e.g. 413 "Content Too Large").
_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}
_LINES.update({413: "413 Content Too Large", 422: "422 Unprocessable Content"})


def status_line(code: int) -> str:
    """``"404 Not Found"`` for 404: the code and its standard reason phrase (``"599 Unknown"`` for none)."""
    return _LINES.get(code) or f"{code} Unknown"


def standard_reasons(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a WSGI app so that each status line it sends carries the standard reason phrase.

    >>> app = Flask(__name__); app.wsgi_app = standard_reasons(app.wsgi_app)  # doctest: +SKIP
    """

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            code = status[:3]
            line = _LINES.get(int(code)) if code.isdigit() else None
            return start_response(line or status, headers, exc_info)

        return app(environ, start)

    return wsgi
