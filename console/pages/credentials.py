"""My credentials: set, replace and delete the secrets templates read as {{ secrets.NAME }}; values are never shown."""

import pandas as pd
import streamlit as st

from console import credentials, ui
from mcpgw_sdk.access import Access
from mcpgw_sdk.errors import ConfigError, Forbidden, NotFound, ReadOnlyError, SecretError

user = ui.require_user()
store = ui.store()
state = st.session_state

st.title("My credentials")
st.caption("Secrets that tools read as `{{ secrets.NAME }}` when you call them with your API keys. "
           "Values are encrypted at rest and never shown again, not even to you.")
if "cr_flash" in state:
    st.success(state.pop("cr_flash"))

owners = credentials.owners(store, user)
label = st.selectbox("Whose secrets", list(owners), key="cr_owner",
                     help="Your account's secrets apply to every key of yours; a key's own secrets come first.")
try:
    rows = credentials.names(store, user, label)
except (NotFound, Forbidden) as exc:
    st.error(str(exc))
    rows = []
st.dataframe(pd.DataFrame([{"name": s.name, "updated": s.updated_at} for s in rows], columns=["name", "updated"]),
             hide_index=True, width="stretch")

with st.form("cr_set", clear_on_submit=True):
    cols = st.columns(2)
    name = cols[0].text_input("Name", key="cr_name", placeholder="GITHUB_TOKEN")
    value = cols[1].text_input("Value", key="cr_value", type="password")
    if st.form_submit_button("Set secret", type="primary"):
        try:
            credentials.put(store, user, label, name, value)
        except (ConfigError, NotFound, Forbidden, ReadOnlyError, SecretError) as exc:
            st.error(f"Not saved: {exc}")
        else:
            state["cr_flash"] = f"Saved secret {name.strip()} (replacing any earlier value)."
            st.rerun()

if rows:
    cols = st.columns([3, 1])
    pick = cols[0].selectbox("Delete secret", [s.name for s in rows], key="cr_delete_pick")
    if cols[1].button("Delete", key="cr_delete"):
        try:
            credentials.delete(store, user, label, pick)
        except (NotFound, Forbidden) as exc:
            st.error(str(exc))
        else:
            state["cr_flash"] = f"Deleted secret {pick}."
            st.rerun()

if Access(user).is_admin:
    st.caption("Tenant fallbacks (used when a caller has no secret of that name) are set with "
               "`PUT /api/v1/tenants/{tenant}/secrets/{name}` or `gw.set_secret(name, value, tenant=...)`.")
