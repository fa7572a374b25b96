"""Servers: every served prefix with its endpoints, client configs, state at the gateway and an on/off switch."""

import streamlit as st

from console import access, servers, ui

user = ui.require_user()
store = ui.store()
gateway = ui.gateway_url()
state = st.session_state


def toggle(item: servers.Served, key: str) -> None:
    """Save the switch's new position as a new version; on failure put the switch back."""
    outcome = servers.set_disabled(store, user, item, disabled=not state[key])
    if not outcome.ok:
        state[key] = not item.disabled
    state["sv_outcome"] = (item.prefix, outcome)


def show_outcome(item: servers.Served) -> None:
    """What the last switch on this prefix did, right under it."""
    prefix, outcome = state.get("sv_outcome") or (None, None)
    if prefix != item.prefix:
        return
    state.pop("sv_outcome", None)
    if outcome.conflict is not None:
        conflict = outcome.conflict
        st.warning(f"Someone else changed this document meanwhile: {conflict} (you started from version "
                   f"{conflict.base_version}, now {conflict.current_version}). Nothing was saved; this page now "
                   "shows the latest version, switch again to apply your change.")
    elif outcome.errors:
        for error in outcome.errors:
            st.error(f"Not saved: {error}")
    else:
        doc = outcome.document
        st.success(f"Saved {doc.tenant}/{doc.name} as version {doc.version}: {item.prefix} is "
                   f"{'disabled' if item.disabled else 'enabled'}.")


st.title("Servers")
readyz = servers.fetch_readyz(gateway)
# Links only to what answers: the gateway's /readyz, never its bare root (which serves nothing).
if readyz.get("reachable"):
    st.caption(f"Gateway `{gateway}` · [status]({gateway}/readyz) · revision {readyz.get('revision', '?')} · "
               f"{'ready' if readyz.get('ready') else 'not ready'}")
else:
    st.warning(f"The gateway does not answer at `{gateway}` (`{readyz.get('error')}`). Is it running "
               "(`mcpgw serve`)? The console looks for it at MCPGW_GATEWAY_URL (`mcpgw console --gateway-url`).")

items = servers.served_prefixes(access.visible_documents(store, user))
if not items:
    st.info("No servers yet. Create one in the Editor or import a spec or document.")
for item in items:
    with st.container(border=True):
        state_text = servers.state_of(readyz, item.tenant, item.document, item.prefix, disabled=item.disabled)
        st.subheader(item.prefix)
        st.caption(f"document {item.tenant}/{item.document} v{item.version} · backends: "
                   f"{', '.join(item.servers) or '—'} · auth: {item.auth} · state: {state_text}")
        key = f"sv_on_{item.prefix}_{item.version}"
        st.toggle(f"Enable {item.prefix}", value=not item.disabled, key=key, on_change=toggle, args=(item, key),
                  help="Off: the gateway stops serving this prefix and ends its sessions; the prefix stays "
                       "reserved. Each switch saves a new version (roll it back in Versions).")
        show_outcome(item)
        for error in servers.document_errors(readyz, item.tenant, item.document):
            st.error(error)
        for label, url in servers.endpoints(gateway, item.prefix).items():
            st.markdown(f"**{label}**")
            st.code(url, language="text")
        configs = servers.client_configs(gateway, item.prefix, auth=item.auth)
        for tab, (language, text) in zip(st.tabs(list(configs)), configs.values(), strict=True):
            with tab:
                st.code(text, language=language)
