"""Servers: every served prefix with its endpoints, client configs and state at the gateway."""

import streamlit as st

from console import access, servers, ui

user = ui.require_user()
store = ui.store()
gateway = ui.gateway_url()

st.title("Servers")
readyz = servers.fetch_readyz(gateway)
if readyz.get("reachable"):
    st.caption(f"Gateway {gateway} · revision {readyz.get('revision', '?')} · "
               f"{'ready' if readyz.get('ready') else 'not ready'}")
else:
    st.warning(f"The gateway does not answer: {readyz.get('error')}. Set MCPGW_GATEWAY_URL to its URL.")

items = servers.served_prefixes(access.visible_documents(store, user))
if not items:
    st.info("No servers yet. Create one in the Editor or import a spec or document.")
for item in items:
    with st.container(border=True):
        state = servers.state_of(readyz, item.tenant, item.document, item.prefix)
        st.subheader(item.prefix)
        st.caption(f"document {item.tenant}/{item.document} · backends: {', '.join(item.servers) or '—'} · "
                   f"auth: {item.auth} · state: {state}")
        for error in servers.document_errors(readyz, item.tenant, item.document):
            st.error(error)
        for label, url in servers.endpoints(gateway, item.prefix).items():
            st.markdown(f"**{label}**")
            st.code(url, language="text")
        configs = servers.client_configs(gateway, item.prefix)
        for tab, (language, text) in zip(st.tabs(list(configs)), configs.values(), strict=True):
            with tab:
                st.code(text, language=language)
