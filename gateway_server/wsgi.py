"""``gunicorn -k gevent gateway_server.wsgi:app``: the gateway for production workers.

gunicorn's gevent worker patches the standard library before it imports this
module. The app starts its reloader and audit writer on the first request of
each worker (nothing runs in the master, so forking stays safe). gunicorn's
gevent worker bounds each request's line and headers by ``--keep-alive``
seconds; the gateway bounds MCP request bodies itself (``body_timeout``).
"""

from .commands import patch, raise_fd_limit
from .logs import setup as _setup_logs

patch()
raise_fd_limit()

from mcpgw_sdk import settings  # noqa: E402

from .app import create_app  # noqa: E402

_setup_logs(level=settings.get("log_level"), fmt=settings.get("log_format"))

#: The WSGI application.
app = create_app(lazy=True)
