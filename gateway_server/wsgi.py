"""``gunicorn -k gevent gateway_server.wsgi:app``: the gateway for production workers.

gunicorn's gevent worker patches the standard library before it imports this
module. The app starts its reloader and audit writer on the first request of
each worker (nothing runs in the master, so forking stays safe).
"""

from .commands import patch
from .logs import setup as _setup_logs

patch()

from mcpgw_sdk import settings  # noqa: E402

from .app import create_app  # noqa: E402

_setup_logs(level=settings.get("log_level"), fmt=settings.get("log_format"))

#: The WSGI application.
app = create_app(lazy=True)
