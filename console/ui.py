"""Streamlit glue shared by the pages: the store, the signed-in user, messages next to fields.

Everything else the pages do lives in plain modules (:mod:`console.editing`,
:mod:`console.usage`, …) that work without Streamlit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from mcpgw_sdk import dburl, settings
from mcpgw_sdk.errors import ConfigError, McpgwError, MigrationRequired, NotFound
from mcpgw_sdk.opening import open_store
from mcpgw_sdk.records import User
from mcpgw_sdk.store import AccountStore, Store

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


def database_problem(url: str | None = None) -> tuple[str, str] | None:
    """Why the console cannot work on the database: (what is wrong, the command that fixes it), or None.

    A SQLite file that does not exist is reported, not created: opening the console must not leave an
    empty database behind.
    """
    url = url or database_url()
    masked = dburl.mask(url)
    if url.startswith("sqlite"):
        try:
            info = dburl.parse(url)
        except ConfigError as exc:
            return str(exc), "mcpgw console --db sqlite:///mcpgw.db"
        if not info.is_memory and not Path(info.database).exists():
            return f"There is no database at {Path(info.database).resolve()} yet.", f"mcpgw db upgrade --db {masked}"
    try:
        _open(url)
    except MigrationRequired:
        return "The database needs an upgrade before the console can use it.", f"mcpgw db upgrade --db {masked}"
    except McpgwError as exc:
        return f"Cannot open the database: {exc}", f"mcpgw db status --db {masked}"
    return None


def store() -> Store:
    """The shared store; shows the reason and stops the page when it cannot be opened.

    Pages behind sign-in may use every part: only a store with accounts lets anyone sign in (a
    ``yaml://`` directory is a config store only).
    """
    problem = database_problem()
    if problem:
        st.error(problem[0])
        st.code(problem[1], language="sh")
        st.stop()
    return _open(database_url())


def user() -> User | None:
    """The signed-in user, or None."""
    return st.session_state.get("user")


def require_user() -> User:
    """The signed-in user, re-read from the store (role and tenants may have changed); stops when none."""
    current = user()
    if current is None:
        st.warning("Please sign in.")
        st.stop()
    accounts = store()
    try:
        fresh = accounts.get_user(current.name) if isinstance(accounts, AccountStore) else None
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
