"""Import: our YAML, Unla's YAML, or an OpenAPI spec (file or URL); preview the tools, then save."""

import pandas as pd
import streamlit as st

from console import access, editing, importing, ui
from mcpgw_sdk.access import Access
from mcpgw_sdk.errors import ConfigError

user = ui.require_user()
store = ui.store()
state = st.session_state

st.title("Import")
if "im_flash" in state:
    st.success(state.pop("im_flash"))
tenants = access.visible_tenants(store, user)
if not tenants:
    st.info("You are not a member of any tenant yet; ask an admin.")
    st.stop()

source = st.radio("Source", ["Upload a file", "Fetch a URL", "Paste text"], horizontal=True, key="im_source")
text, label = None, "upload"
if source == "Upload a file":
    upload = st.file_uploader("Document or spec (YAML or JSON)", type=["yaml", "yml", "json"], key="im_file")
    if upload is not None:
        text, label = upload.getvalue().decode("utf-8", errors="replace"), upload.name
elif source == "Fetch a URL":
    url = st.text_input("URL of a spec or document", key="im_url")
    if url and st.button("Fetch", key="im_fetch"):
        try:
            state["im_fetched"] = (importing.fetch(url, trusted=Access(user).may_fetch_url()), url)
        except ConfigError as exc:
            st.error(str(exc))
    if state.get("im_fetched") and state["im_fetched"][1] == url:
        text, label = state["im_fetched"]
else:
    pasted = st.text_area("YAML or JSON", key="im_text", height=240)
    if pasted.strip():
        text, label = pasted, "pasted text"

if text is None:
    st.stop()

try:
    data = importing.load(text, source=label)
    kind = importing.detect(data)
except ConfigError as exc:
    st.error(f"Cannot read {label}: {exc}")
    st.stop()
# A new file, URL or text brings its own name (the spec's title, the document's name or the file's name);
# set before the field exists, and only then, so what the user types afterwards stays.
origin = (label, hash(text))
if state.get("im_origin") != origin:
    state["im_origin"] = origin
    state["im_name"] = importing.suggest_name(data, label)
st.caption(f"Recognised as: **{ {'openapi': 'an OpenAPI spec', 'unla': 'an Unla document', 'mcpgw': 'an mcpgw document'}[kind] }**")

cols = st.columns(4)
tenant = cols[0].selectbox("Tenant", tenants, key="im_tenant")
name = cols[1].text_input("Document name", key="im_name",
                          help="Proposed from the spec's title, the document's own name or the file's name; "
                               "change it to save under another name.")
prefix = cols[2].text_input("Router prefix", key="im_prefix", disabled=kind != "openapi",
                            placeholder=f"/{tenant}/{name or 'name'}")
base_url = cols[3].text_input("Base URL of the API", key="im_base", disabled=kind != "openapi",
                              help="Overrides the spec's first server URL.")
if kind == "openapi" and not name.strip():
    st.info("Give the document a name to see the tools it will serve.")
    st.stop()
headers, config = "", ""
if kind == "openapi":
    with st.expander("Credentials and headers"):
        cols = st.columns(2)
        headers = cols[0].text_area("Headers every tool sends", key="im_headers", placeholder="X-Tenant=acme",
                                    help="NAME=VALUE per line; each value is a template kept in the server's config.")
        config = cols[1].text_area("Config values", key="im_config",
                                   placeholder="api_key={{ secrets.PETS_KEY }}",
                                   help="NAME=VALUE per line: set or replace server config values, such as the "
                                        "credentials the spec's security schemes read (default: env()).")
try:
    preview = importing.convert(text, source=label, tenant=tenant, name=name.strip(), prefix=prefix.strip(),
                                base_url=base_url.strip(), headers=headers, config=config)
except ConfigError as exc:
    st.error(f"Cannot import {label}: {exc}")
    st.stop()

st.subheader(f"Preview: {len(preview.tools)} tool(s)")
st.table(pd.DataFrame(preview.tools, columns=["tool", "method", "endpoint", "arguments", "description"]))
with st.expander("The document that will be saved"):
    st.code(editing.to_yaml(preview.content), language="yaml")

errors = editing.validate(preview.content) + editing.set_errors(store, preview.content)
for error in errors:
    st.error(f"`{error.path or 'document'}`: {error.reason}", icon="⚠️")

ident = f"{preview.content.get('tenant')}/{preview.content.get('name')}"
exists = any(f"{d.tenant}/{d.name}" == ident for d in store.list_documents())
if st.button(f"Save {ident}" + (" as a new version" if exists else ""), type="primary", key="im_save",
             disabled=bool(errors)):
    try:
        current = store.get_document(preview.content["tenant"], preview.content["name"]) if exists else None
    except LookupError:
        current = None
    outcome = editing.save(store, preview.content, user=user, base_version=current.version if current else None)
    if outcome.ok:
        state["im_flash"] = f"Saved {ident} as version {outcome.document.version}."
        st.rerun()
    for error in outcome.errors:
        st.error(str(error))
    if outcome.conflict:
        st.warning(f"Not saved: {outcome.conflict}. Try again.")
