"""Versions: a document's history, a side-by-side diff of any two versions, rollback (deleted documents too)."""

import pandas as pd
import streamlit as st

from console import access, editing, ui
from mcpgw_sdk.errors import Forbidden

user = ui.require_user()
store = ui.store()
state = st.session_state

st.title("Versions")
if "ve_flash" in state:
    st.success(state.pop("ve_flash"))
docs = access.visible_documents(store, user, include_deleted=True)
if not docs:
    st.info("No documents yet.")
    st.stop()
labels = [f"{d.tenant}/{d.name}" + (" (deleted)" if d.deleted else "") for d in docs]
choice = st.selectbox("Document", labels, key="ve_doc")
doc = docs[labels.index(choice)]
versions = store.list_versions(doc.tenant, doc.name)
st.dataframe(pd.DataFrame([{"version": v.version, "action": v.action, "author": v.author or "",
                            "when": v.created_at, "reverted from": v.reverted_from} for v in versions]),
             hide_index=True, width="stretch")

numbers = [v.version for v in versions]
ident = f"{doc.tenant}/{doc.name}"  # widget keys per document, so a choice never leaks to another one
with_content = [v.version for v in versions if v.content is not None]
cols = st.columns(2)
left = cols[0].selectbox("Compare version", numbers, index=min(1, len(numbers) - 1), key=f"ve_a:{ident}")
right = cols[1].selectbox("with version", numbers, index=0, key=f"ve_b:{ident}")
by_number = {v.version: v for v in versions}
for col, number in zip(cols, (left, right), strict=True):
    version = by_number[number]
    with col:
        st.caption(f"version {number} · {version.action} · {version.author or ''}")
        st.code(editing.to_yaml(version.content) if version.content is not None else "(deleted)", language="yaml")
diff = store.diff_versions(doc.tenant, doc.name, left, right)
st.markdown("**Changes**")
st.code(diff or "(no differences)", language="diff")

st.subheader("Roll back")
target = st.selectbox("Restore version", with_content, key=f"ve_target:{ident}")
if st.button(f"Restore version {target} as a new version", key="ve_rollback", type="primary"):
    try:
        restored = store.rollback(doc.tenant, doc.name, target, author=user.name, actor=user)
    except Forbidden as exc:
        st.error(f"Not restored: {exc}")
    else:
        state["ve_flash"] = f"Restored version {target} of {doc.tenant}/{doc.name} as version {restored.version}."
        st.rerun()
