"""``gunicorn -k gevent gateway_server.wsgi:app``: the gateway for production workers.

gunicorn's gevent worker patches the standard library before it imports this
module. The app starts its reloader and audit writer on the first request of
each worker (nothing runs in the master, so forking stays safe). gunicorn's
gevent worker bounds each request's line and headers by ``--keep-alive``
seconds; the gateway bounds MCP request bodies itself (``body_timeout``).

Several workers without ``MCPGW_REDIS_URL`` log a warning at start: legacy MCP
sessions would each live in one worker's memory (docs/scale-out.md).
"""

from .commands import gunicorn_workers, patch, raise_fd_limit, shared_sessions_warning
from .logs import setup as _setup_logs

patch()
raise_fd_limit()

import logging  # noqa: E402

from mcpgw_sdk import settings  # noqa: E402

from .app import create_app  # noqa: E402

_settings = settings.resolve()
_setup_logs(level=_settings.log_level, fmt=_settings.log_format)
_workers = gunicorn_workers()
_warning = shared_sessions_warning(_workers, _settings.redis_url)
if _warning:
    logging.getLogger("mcpgw.gateway").warning("%s", _warning, extra={"workers": _workers})

#: The WSGI application.
app = create_app(lazy=True, settings=_settings)
