"""Versions: a document's history, the diff of any two versions first, rollback and delete (each confirmed)."""

import pandas as pd
import streamlit as st

from console import access, editing, ui
from console import versions as history
from mcpgw_sdk.errors import ConflictError, Forbidden, NotFound

user = ui.require_user()
store = ui.store()
state = st.session_state

st.title("Versions")
if "ve_flash" in state:
    st.success(state.pop("ve_flash"))
docs = access.visible_documents(store, user, include_deleted=True)
if not docs:
    st.info("No documents yet. Create one in the Editor or import one.")
    st.stop()
if "ve_select" in state:  # a choice made by this page (after a delete), applied before the widget exists
    state["ve_doc"] = state.pop("ve_select")
labels = [f"{d.tenant}/{d.name}" + (" (deleted)" if d.deleted else "") for d in docs]
choice = st.selectbox("Document", labels, key="ve_doc")
doc = docs[labels.index(choice)]
versions = store.list_versions(doc.tenant, doc.name)
numbers = [v.version for v in versions]
by_number = {v.version: v for v in versions}
ident = f"{doc.tenant}/{doc.name}"  # widget keys per document, so a choice never leaks to another one

# The diff first: what changed between the previous version and the latest, unless the user picks others.
cols = st.columns(2)
left = cols[0].selectbox("Compare version", numbers, index=min(1, len(numbers) - 1), key=f"ve_a:{ident}")
right = cols[1].selectbox("with version", numbers, index=0, key=f"ve_b:{ident}")
st.markdown(f"**Changes from version {left} to version {right}**")
st.code(store.diff_versions(doc.tenant, doc.name, left, right) or "(no differences)", language="diff")
with st.expander(f"Versions {left} and {right} in full"):
    full = st.columns(2)
    for col, number in zip(full, (left, right), strict=True):
        version = by_number[number]
        with col:
            st.caption(f"version {number} · {version.action}" + (f" · {version.author}" if version.author else ""))
            st.code(editing.to_yaml(version.content) if version.content is not None else "(deleted)",
                    language="yaml")

st.subheader("History")
st.dataframe(pd.DataFrame(history.history_rows(versions),
                          columns=["version", "action", "author", "when", "reverted from"]),
             hide_index=True, width="stretch")

pending = state.get("ve_confirm")  # ("rollback", ident, version) or ("delete", ident, version): asked, not done
if pending and pending[1] != ident:
    state.pop("ve_confirm")
    pending = None


def confirm(question: str) -> bool | None:
    """Ask ``question`` with Yes/Cancel: True on Yes, False on Cancel, None while unanswered."""
    st.warning(question)
    yes, no = st.columns([1, 6])
    if yes.button("Yes", key="ve_yes", type="primary"):
        state.pop("ve_confirm", None)
        return True
    if no.button("Cancel", key="ve_cancel"):
        state.pop("ve_confirm", None)
        st.rerun()
    return None


st.subheader("Roll back")
choices = history.restore_choices(versions)
if not choices:
    st.caption("Only one version so far: nothing to restore.")
else:
    target = st.selectbox("Restore version", choices, index=0, key=f"ve_target:{ident}",
                          help="Preselected: the version before the current one.")
    if st.button(f"Restore version {target} as a new version", key="ve_rollback", type="primary"):
        state["ve_confirm"] = ("rollback", ident, target)
        st.rerun()
    if pending and pending[0] == "rollback":
        number = pending[2]
        answer = confirm(f"Restore version {number} of {ident}? Its content becomes version {numbers[0] + 1}; "
                         "the history keeps every version, so this can be undone here too.")
        if answer:
            try:
                access.check_tenant(user, doc.tenant, to="roll_back")
                restored = store.rollback(doc.tenant, doc.name, number, author=user.name, actor=user)
            except (Forbidden, NotFound, ConflictError) as exc:
                st.error(f"Not restored: {exc}")
            else:
                state["ve_flash"] = f"Restored version {number} of {ident} as version {restored.version}."
                st.rerun()

if not doc.deleted:
    st.subheader("Delete")
    if st.button(f"Delete {ident}", key="ve_delete"):
        state["ve_confirm"] = ("delete", ident, doc.version)
        st.rerun()
    if pending and pending[0] == "delete":
        answer = confirm(f"Delete {ident}? The gateway stops serving its endpoints within seconds. Its history "
                         "stays: restore any version here to bring it back.")
        if answer:
            try:
                access.check_tenant(user, doc.tenant, to="delete")
                gone = store.delete_document(doc.tenant, doc.name, author=user.name, base_version=pending[2])
            except (Forbidden, NotFound, ConflictError) as exc:
                st.error(f"Not deleted: {exc}")
            else:
                state["ve_flash"] = f"Deleted {ident} (version {gone.version}); restore it from this page."
                state["ve_select"] = f"{ident} (deleted)"
                st.rerun()
