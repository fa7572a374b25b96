"""WSGI entry point for gunicorn: ``gunicorn -k gevent -w 4 gateway_server.api.wsgi:app``.

gunicorn's gevent worker patches the standard library before loading this
module; psycopg2 is made cooperative here. The store comes from
``MCPGW_DATABASE_URL`` (and the signing secret from ``MCPGW_JWT_SECRET`` or the
database, so every worker shares it).
"""

from __future__ import annotations

try:
    from psycogreen.gevent import patch_psycopg
except ImportError:  # the postgresql extra is not installed
    pass
else:
    patch_psycopg()

from .app import create_app  # noqa: E402 - after patching psycopg2

app = create_app()
