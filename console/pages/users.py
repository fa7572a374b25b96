"""Users, tenants and API keys (admins); a member manages their own keys. A new key's secret is shown once."""

import pandas as pd
import streamlit as st

from console import access, ui
from console import keys as keyforms
from mcpgw_sdk.access import Access
from mcpgw_sdk.errors import ConfigError, ConflictError, Forbidden, NotFound
from mcpgw_sdk.records import ADMIN, DEFAULT_ROLE
from mcpgw_sdk.workspace import Workspace

user = ui.require_user()
store = ui.store()
state = st.session_state
admin = Access(user).may_manage_users()

st.title("Users & keys" if admin else "API keys")
if "us_flash" in state:
    st.success(state.pop("us_flash"))


def when(moment) -> str:
    """A timestamp for a table cell; empty for none (a table would show ``None``)."""
    return moment.strftime("%Y-%m-%d %H:%M") if moment else ""


def keys_section():
    st.subheader("API keys")
    secret = state.pop("us_secret", None)
    if secret:
        st.warning("Copy this key now: it is shown once and never again.")
        st.code(secret, language="text")
    keys = access.visible_keys(store, user)
    st.dataframe(pd.DataFrame([{"id": k.id, "name": k.name, "starts with": k.prefix, "user": k.user,
                                "tenant": k.tenant, "restricted to": keyforms.scope_text(k.servers, k.tools),
                                "expires": when(k.expires_at), "last used": when(k.last_used_at),
                                "revoked": k.revoked} for k in keys],
                              columns=["id", "name", "starts with", "user", "tenant", "restricted to", "expires",
                                       "last used", "revoked"]),
                 hide_index=True, width="stretch")
    tenants = access.visible_tenants(store, user)
    st.markdown("**Create a key**")
    # The tenant outside the form: the servers and tools offered below are the chosen tenant's.
    tenant = st.selectbox("Tenant", tenants, key="us_key_tenant")
    server_names, tool_names = keyforms.scope_choices(store, tenant)
    with st.form("us_key", clear_on_submit=True):
        cols = st.columns(3)
        name = cols[0].text_input("Key name", key="us_key_name")
        owner = cols[1].selectbox("For user", [u.name for u in store.list_users()] if admin else [user.name],
                                  key="us_key_user")
        expiry = cols[2].selectbox("Expires after", list(keyforms.EXPIRY), key="us_key_expiry")
        cols = st.columns(2)
        only_servers = cols[0].multiselect(
            "Only these servers", server_names, key="us_key_servers", accept_new_options=True,
            placeholder="all of the tenant's servers", help="Empty: every server of the tenant.")
        only_tools = cols[1].multiselect(
            "Only these tools", tool_names, key="us_key_tools", accept_new_options=True,
            placeholder="all tools", help="Empty: every tool. Type a name to add a tool of an upstream MCP server "
                                          "(the name clients see).")
        if st.form_submit_button("Create key"):
            if not tenant:
                st.error("Tenant: you are not a member of any tenant")
            else:
                try:
                    new = Workspace(store, author=user.name).create_key(
                        owner, tenant, name=name.strip(), servers=only_servers, tools=only_tools,
                        expires_days=keyforms.EXPIRY[expiry])
                except (ConfigError, NotFound, ConflictError, Forbidden) as exc:
                    st.error(f"Not created: {exc}")
                else:
                    state["us_secret"] = new.secret
                    scope = keyforms.scope_text(new.key.servers, new.key.tools)
                    state["us_flash"] = (f"Created key {name.strip() or '(unnamed)'} for {owner} on {tenant}"
                                         + (f" ({scope})" if scope else "")
                                         + (f", expires {when(new.key.expires_at)}" if new.key.expires_at else "")
                                         + ".")
                    st.rerun()
    live = [k for k in keys if not k.revoked]
    if live:
        cols = st.columns([3, 1])
        labels = {f"#{k.id} {k.name or k.prefix} ({k.user}, {k.tenant})": k for k in live}
        pick = cols[0].selectbox("Revoke key", list(labels), key="us_revoke_pick")
        if cols[1].button("Revoke", key="us_revoke"):
            key = labels[pick]
            access.check_key(user, key)
            store.revoke_key(key.id)
            state["us_flash"] = f"Revoked key #{key.id}."
            st.rerun()


def users_section():
    st.subheader("Users")
    users = store.list_users()
    st.dataframe(pd.DataFrame([{"name": u.name, "role": u.role, "active": u.active, "tenants": ", ".join(u.tenants)}
                               for u in users], columns=["name", "role", "active", "tenants"]),
                 hide_index=True, width="stretch")
    tenant_names = [t.name for t in store.list_tenants()]
    with st.form("us_add", clear_on_submit=True):
        st.markdown("**Add a user**")
        cols = st.columns(4)
        name = cols[0].text_input("Name", key="us_add_name")
        password = cols[1].text_input("Password", type="password", key="us_add_password")
        role = cols[2].selectbox("Role", [DEFAULT_ROLE, ADMIN], key="us_add_role")
        tenants = cols[3].multiselect("Tenants", tenant_names, key="us_add_tenants")
        if st.form_submit_button("Add user"):
            if not name.strip() or not password:
                st.error("Name and password: both required")
            else:
                try:
                    store.create_user(name.strip(), password, role=role, tenants=tenants)
                except (ConfigError, ConflictError, NotFound) as exc:
                    st.error(f"Not added: {exc}")
                else:
                    state["us_flash"] = f"Added {role} {name.strip()}."
                    st.rerun()
    if users:
        st.markdown("**Change a user**")
        names = [u.name for u in users]
        pick = st.selectbox("User", names, key="us_edit_pick")
        target = users[names.index(pick)]
        with st.form(f"us_edit_{pick}"):
            cols = st.columns(3)
            role = cols[0].selectbox("Role", [DEFAULT_ROLE, ADMIN], index=0 if target.role == DEFAULT_ROLE else 1)
            active = cols[1].checkbox("Active", value=target.active)
            tenants = cols[2].multiselect("Tenants", tenant_names, default=[t for t in target.tenants
                                                                            if t in tenant_names])
            password = st.text_input("New password (leave empty to keep)", type="password")
            if st.form_submit_button("Save user"):
                if not Access(user).may_remove(target.name) and (role != ADMIN or not active):
                    st.error("Role: you cannot demote or deactivate yourself")
                else:
                    store.update_user(target.name, role=role, active=active, tenants=tenants)
                    if password:
                        store.set_password(target.name, password)
                    state["us_flash"] = f"Saved {target.name}."
                    st.rerun()


def tenants_section():
    st.subheader("Tenants")
    st.dataframe(pd.DataFrame([{"name": t.name, "prefix": t.prefix, "description": t.description}
                               for t in store.list_tenants()], columns=["name", "prefix", "description"]),
                 hide_index=True, width="stretch")
    with st.form("us_tenant", clear_on_submit=True):
        cols = st.columns(3)
        name = cols[0].text_input("Tenant name", key="us_tenant_name")
        prefix = cols[1].text_input("Prefix", key="us_tenant_prefix", placeholder="/name")
        description = cols[2].text_input("Description", key="us_tenant_desc")
        if st.form_submit_button("Add tenant"):
            try:
                store.create_tenant(name.strip(), prefix=prefix.strip() or None, description=description)
            except (ConfigError, ConflictError) as exc:
                st.error(f"Not added: {exc}")
            else:
                state["us_flash"] = f"Added tenant {name.strip()}."
                st.rerun()


if admin:
    users_section()
    tenants_section()
keys_section()
