"""The management REST API (the control plane) under ``/api/v1``.

>>> from gateway_server.api import create_app
>>> app = create_app(store_url="sqlite:///mcpgw.db")  # doctest: +SKIP

Nothing is imported until used, so ``mcpgw api`` can patch gevent before
PyJWT, peewee and the database drivers load.
"""

__all__ = ["create_app"]


def __getattr__(name):
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
