"""Streamlit glue shared by the pages: the store, the signed-in user, messages next to fields.

Everything else the pages do lives in plain modules (:mod:`console.editing`,
:mod:`console.usage`, …) that work without Streamlit.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from mcpgw_sdk import settings
from mcpgw_sdk.errors import McpgwError, NotFound
from mcpgw_sdk.records import User
from mcpgw_sdk.store import Store, open_store

from .editing import FieldError, errors_at


@st.cache_resource(show_spinner=False)
def _open(url: str) -> Store:
    return open_store(url)


def database_url() -> str:
    """The database the console works on (``--db`` / ``MCPGW_DATABASE_URL``)."""
    return settings.get("database_url")


def gateway_url() -> str:
    """The gateway's URL as the console reaches it (``MCPGW_GATEWAY_URL``)."""
    return settings.get("gateway_url").rstrip("/")


def store() -> Store:
    """The shared store; shows the reason and stops the page when it cannot be opened."""
    try:
        return _open(database_url())
    except McpgwError as exc:
        st.error(f"Cannot open the database: {exc}")
        st.stop()
        raise  # unreachable: st.stop() raises


def user() -> User | None:
    """The signed-in user, or None."""
    return st.session_state.get("user")


def require_user() -> User:
    """The signed-in user, re-read from the store (role and tenants may have changed); stops when none."""
    current = user()
    if current is None:
        st.warning("Please sign in.")
        st.stop()
    try:
        fresh = store().get_user(current.name)
    except NotFound:
        fresh = None
    if fresh is None or not fresh.active:
        st.session_state.pop("user", None)
        st.warning("Your account is no longer active. Please sign in again.")
        st.stop()
    st.session_state["user"] = fresh
    return fresh


def sign_out() -> None:
    """Forget the user and everything the pages kept in the session."""
    for key in list(st.session_state.keys()):
        del st.session_state[key]


def field_errors(errors: list[FieldError], prefix: str, *, exact: bool = False) -> None:
    """Show, right where it is called, the errors for the field ``prefix`` (and inside it)."""
    shown = [e for e in errors if e.path == prefix] if exact else errors_at(errors, prefix)
    for error in shown:
        st.error(f"`{error.path}`: {error.reason}", icon="⚠️")


def reset_keys(prefix: str) -> None:
    """Drop session-state entries (widget values) whose key starts with ``prefix``."""
    for key in [k for k in st.session_state.keys() if str(k).startswith(prefix)]:
        del st.session_state[key]


def remember(key: str, factory: Any) -> Any:
    """``st.session_state[key]``, created by calling ``factory()`` the first time."""
    if key not in st.session_state:
        st.session_state[key] = factory()
    return st.session_state[key]


def pick_prefix(store: Store, user: User, *, key: str, default: str = "") -> str | None:
    """A selectbox of the prefixes the user may use; None (with a hint) when there are none."""
    from .access import visible_documents
    from .servers import served_prefixes

    prefixes = [s.prefix for s in served_prefixes(visible_documents(store, user)) if not s.disabled]
    if not prefixes:
        st.info("No servers yet. Create one in the Editor or import one.")
        return None
    index = prefixes.index(default) if default in prefixes else 0
    return st.selectbox("Server", prefixes, index=index, key=key)
