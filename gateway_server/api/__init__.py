"""The management REST API (the control plane) under ``/api/v1``.

>>> from gateway_server.api import create_app
>>> app = create_app(store_url="sqlite:///mcpgw.db")  # doctest: +SKIP
"""

from .app import create_app

__all__ = ["create_app"]
