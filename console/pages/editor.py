"""Editor: a document in form mode or YAML mode; validation errors next to their fields; versioned saves."""

import copy

import pandas as pd
import streamlit as st
import yaml

from console import access, editing, ui
from mcpgw_sdk.errors import ConfigError, NotFound

NEW = "+ New document"
W = "ed_w_"  # prefix of every widget key, dropped when another document (or version) is loaded

user = ui.require_user()
store = ui.store()
state = st.session_state


def load(content, *, ident, base):
    """Make ``content`` the working copy (version ``base`` of ``ident``)."""
    state["ed_draft"] = copy.deepcopy(content)
    state["ed_ident"] = ident
    state["ed_base"] = base
    state["ed_errors"] = []
    state["ed_conflict"] = None
    ui.reset_keys(W)
    ui.reset_keys("ed_rows_")


def rows(name, make):
    """The rows a data editor starts from, fixed until the next load (edits are deltas on them)."""
    return ui.remember(f"ed_rows_{name}", lambda: pd.DataFrame(make()))


def table(name, make, columns, **kwargs):
    """A dynamic data editor whose edited rows come back as a list of dicts."""
    data = rows(name, make)
    for col in columns:
        if col not in data.columns:
            data[col] = pd.Series(dtype=object)
    edited = st.data_editor(data[list(columns)], key=W + name, num_rows="dynamic", width="stretch",
                            hide_index=True, **kwargs)
    return edited.to_dict("records")


def pick_document():
    docs = access.visible_documents(store, user)
    labels = [NEW] + [f"{d.tenant}/{d.name}" for d in docs]
    if "ed_pick_next" in state:
        state["ed_pick"] = state.pop("ed_pick_next")
    current = state.get("ed_ident")
    index = labels.index(current) if current in labels else 0
    choice = st.selectbox("Document", labels, index=index, key="ed_pick")
    if choice == NEW:
        if current is not None and current in labels:
            state.pop("ed_draft", None)
            state["ed_ident"] = None
        return
    if choice != current or "ed_draft" not in state:
        doc = next(d for d in docs if f"{d.tenant}/{d.name}" == choice)
        load(doc.content, ident=choice, base=doc.version)


def new_form():
    tenants = access.visible_tenants(store, user)
    if not tenants:
        st.info("You are not a member of any tenant yet; ask an admin.")
        st.stop()
    with st.form("ed_new"):
        st.markdown("**New document**")
        tenant = st.selectbox("Tenant", tenants, key="ed_new_tenant")
        name = st.text_input("Name", key="ed_new_name")
        prefix = st.text_input("Router prefix", key="ed_new_prefix", placeholder="/tenant/name")
        if st.form_submit_button("Start editing"):
            if not name.strip():
                st.error("Name: required")
                return
            load(editing.new_document(tenant=tenant, name=name.strip(), prefix=prefix.strip()), ident=None, base=None)
            st.rerun()


def form_mode(draft, errors):
    ui.field_errors(errors, "name", exact=True)
    ui.field_errors(errors, "tenant", exact=True)
    st.subheader("Routers")
    routers = table("routers", lambda: editing.routers_to_rows(draft.get("routers")), editing.ROUTER_COLUMNS)
    draft["routers"] = editing.rows_to_routers(routers, original=draft.get("routers"))
    ui.field_errors(errors, "routers")
    for i, router in enumerate(draft["routers"]):
        shaping_form(i, router, errors)

    st.subheader("REST servers")
    for i, server in enumerate(draft.get("servers") or []):
        with st.expander(f"Server {server.get('name', i)}", expanded=bool(editing.errors_at(errors, f"servers[{i}]"))):
            editing.put(server, "description", st.text_input("Description", server.get("description", ""),
                                                             key=f"{W}srv{i}_desc"))
            editing.put(server, "allowedTools", editing.split_list(st.text_input(
                "Allowed tools (comma separated)", ", ".join(server.get("allowedTools") or []),
                key=f"{W}srv{i}_allowed")), keep_empty=True)
            st.caption("Config (templates, seen as config.*)")
            editing.put(server, "config", editing.rows_to_mapping(table(
                f"srv{i}_config", lambda s=server: editing.mapping_to_rows(s.get("config")), ["key", "value"])),
                keep_empty=True)
            ui.field_errors(errors, f"servers[{i}]")
    ui.field_errors([e for e in errors if e.path == "servers"], "servers")

    st.subheader("Tools")
    tools = draft.setdefault("tools", [])
    for i, tool in enumerate(tools):
        tool_form(i, tool, errors)
    with st.form("ed_add_tool", clear_on_submit=True):
        cols = st.columns([2, 1, 4])
        name = cols[0].text_input("New tool name", key="ed_add_tool_name")
        method = cols[1].selectbox("Method", editing.HTTP_METHODS, key="ed_add_tool_method")
        endpoint = cols[2].text_input("New tool endpoint", key="ed_add_tool_endpoint", placeholder="{{ config.base }}/path")
        if st.form_submit_button("Add tool"):
            problems = editing.add_tool(draft, name=name, method=method, endpoint=endpoint)
            for problem in problems:
                st.error(str(problem))
            if not problems:
                ui.reset_keys(W)
                ui.reset_keys("ed_rows_")
                st.rerun()

    st.subheader("Upstream MCP servers")
    upstream = table("mcp", lambda: editing.mcp_to_rows(draft.get("mcpServers")), editing.MCP_COLUMNS,
                     column_config={"type": st.column_config.SelectboxColumn(
                         options=["stdio", "sse", "streamable-http"])})
    servers = editing.rows_to_mcp(upstream, original=draft.get("mcpServers"))
    if servers or "mcpServers" in draft:
        draft["mcpServers"] = servers
    ui.field_errors(errors, "mcpServers")

    st.subheader("Prompts")
    prompts_text = st.text_area("Prompts (YAML list)", yaml.safe_dump(draft.get("prompts"), sort_keys=False).strip()
                                if draft.get("prompts") else "", key=f"{W}prompts", height=120)
    try:
        prompts = yaml.safe_load(prompts_text) if prompts_text.strip() else []
    except yaml.YAMLError as exc:
        st.error(f"Prompts: not YAML: {exc}")
    else:
        if prompts or "prompts" in draft:
            draft["prompts"] = prompts or []
    ui.field_errors(errors, "prompts")


def shaping_form(i, router, errors):
    """A router's tool shaping (``routers[i].tools``): one row per reshaped tool (docs/tool-shaping.md)."""
    path = f"routers[{i}]"
    with st.expander(f"Tool shaping — {router.get('prefix') or i}",
                     expanded=bool(editing.errors_at(errors, f"{path}.tools"))):
        st.caption("Rename, describe or hide the tools this router exposes. Tool: the name the router would "
                   'expose. Arguments (JSON): {"org": {"fixed": "acme"}, "q": {"description": "…", '
                   '"default": 20}}; fixed arguments are hidden from clients and always sent.')
        edited = table(f"shape{i}", lambda r=router: editing.shapes_to_rows(r.get("tools")), editing.SHAPE_COLUMNS,
                       column_config={"hidden": st.column_config.CheckboxColumn()})
        shapes, problems = editing.rows_to_shapes(edited, path)
        for problem in problems:
            st.error(str(problem))
        if problems:
            return  # keep the last good shaping until the cells parse
        editing.put(router, "tools", shapes, keep_empty=True)
        ui.field_errors(errors, f"{path}.tools")


def tool_form(i, tool, errors):
    mine = editing.errors_at(errors, f"tools[{i}]")
    with st.expander(f"Tool {tool.get('name', i)}", expanded=bool(mine) or state.get("ed_open_tool") == i):
        cols = st.columns([1, 4])
        methods = list(editing.HTTP_METHODS)
        method = tool.get("method", "GET").upper()
        tool["method"] = cols[0].selectbox("Method", methods, methods.index(method) if method in methods else 0,
                                           key=f"{W}tool{i}_method")
        tool["endpoint"] = cols[1].text_input("Endpoint", tool.get("endpoint", ""), key=f"{W}tool{i}_endpoint")
        for error in mine:  # right under the fields they are about, above the longer tables
            st.error(f"`{error.path}`: {error.reason}", icon="⚠️")
        editing.put(tool, "description", st.text_input("Description", tool.get("description", ""),
                                                       key=f"{W}tool{i}_desc"))
        st.caption("Arguments")
        arg_rows = table(f"tool{i}_args", lambda: editing.args_to_rows(tool), editing.ARG_COLUMNS,
                         column_config={
                             "position": st.column_config.SelectboxColumn(options=list(editing.ARG_POSITIONS)),
                             "type": st.column_config.SelectboxColumn(options=list(editing.ARG_TYPES)),
                             "required": st.column_config.CheckboxColumn()})
        tool["args"] = editing.rows_to_args(arg_rows, original=tool.get("args"))
        with st.form(f"ed_add_arg_{i}", clear_on_submit=True):
            cols = st.columns([2, 1, 1, 1, 3])
            name = cols[0].text_input("New argument", key=f"ed_arg{i}_name")
            position = cols[1].selectbox("Position", editing.ARG_POSITIONS, key=f"ed_arg{i}_position")
            kind = cols[2].selectbox("Type", editing.ARG_TYPES, key=f"ed_arg{i}_type")
            required = cols[3].checkbox("Required", key=f"ed_arg{i}_required")
            description = cols[4].text_input("Description", key=f"ed_arg{i}_desc")
            if st.form_submit_button("Add argument"):
                problems = editing.add_arg(tool, name=name, position=position, type=kind, required=required,
                                           description=description)
                for problem in problems:
                    st.error(str(problem))
                if not problems:
                    state.pop(f"ed_rows_tool{i}_args", None)
                    state.pop(f"{W}tool{i}_args", None)
                    state["ed_open_tool"] = i
                    st.rerun()
        st.caption("Headers (templates)")
        editing.put(tool, "headers", editing.rows_to_mapping(table(
            f"tool{i}_headers", lambda: editing.mapping_to_rows(tool.get("headers")), ["key", "value"])))
        for field, label in (("requestBody", "Request body (template)"), ("responseBody", "Response body (template)")):
            text = st.text_area(label, tool.get(field, ""), key=f"{W}tool{i}_{field}", height=80)
            if text.strip():
                tool[field] = text
            else:
                tool.pop(field, None)
        if st.button("Remove this tool", key=f"{W}tool{i}_remove"):
            draft["tools"].pop(i)
            for server in draft.get("servers") or []:
                if tool.get("name") in (server.get("allowedTools") or []):
                    server["allowedTools"].remove(tool["name"])
            ui.reset_keys(W)
            ui.reset_keys("ed_rows_")
            st.rerun()


def yaml_mode(draft):
    if W + "yaml" not in state:
        state[W + "yaml"] = editing.to_yaml(draft)
    text = st.text_area("YAML", key=W + "yaml", height=480)
    try:
        parsed = editing.parse_yaml(text, source="YAML")
    except ConfigError as exc:
        st.error(f"The YAML does not parse: {exc}")
        return None
    draft.clear()
    draft.update(parsed)
    return draft


def conflict_box():
    conflict = state.get("ed_conflict")
    if not conflict:
        return
    st.warning(f"Someone else changed this document while you edited it: {conflict} "
               f"(you started from version {conflict.base_version}, now {conflict.current_version}). "
               "Nothing was saved.")
    cols = st.columns(3)
    if cols[0].button("Reload the latest version (discard my changes)", key="ed_reload"):
        draft = state["ed_draft"]
        doc = store.get_document(draft["tenant"], draft["name"])
        load(doc.content, ident=f"{doc.tenant}/{doc.name}", base=doc.version)
        state["ed_pick_next"] = f"{doc.tenant}/{doc.name}"
        st.rerun()
    if cols[1].button("Overwrite with my version", key="ed_overwrite"):
        state["ed_base"] = conflict.current_version
        state["ed_conflict"] = None
        state["ed_save_now"] = True
        st.rerun()
    if cols[2].button("Keep editing", key="ed_keep"):
        state["ed_conflict"] = None
        st.rerun()


st.title("Editor")
if "ed_flash" in state:
    st.success(state.pop("ed_flash"))
if "ed_flash_error" in state:
    st.error(state.pop("ed_flash_error"))
pick_document()
if state.get("ed_ident") is None and "ed_draft" not in state:
    new_form()
    st.stop()

draft = state["ed_draft"]
errors = state.get("ed_errors") or []
base = state.get("ed_base")
st.caption(f"{draft.get('tenant')}/{draft.get('name')} · "
           + (f"editing version {base}" if base else "new document, not saved yet"))
mode = st.radio("Mode", ["Form", "YAML"], horizontal=True, key="ed_mode")
if state.get("ed_last_mode") != mode:
    state.pop(W + "yaml", None)
    ui.reset_keys(W)
    ui.reset_keys("ed_rows_")
    state["ed_last_mode"] = mode

parsed = form_mode(draft, errors) if mode == "Form" else yaml_mode(draft)
if mode == "YAML":
    for error in errors:
        st.error(f"`{error.path or 'document'}`: {error.reason}", icon="⚠️")
    unplaced = []
else:
    unplaced = [e for e in errors if not any(e.path.startswith(s) for s in
                                             ("name", "tenant", "routers", "servers", "tools", "mcpServers",
                                              "prompts"))]
for error in unplaced:
    st.error(str(error), icon="⚠️")

conflict_box()
cols = st.columns([1, 1, 1, 4])
validate = cols[0].button("Validate", key="ed_validate")
save = cols[1].button("Save", type="primary", key="ed_save") or state.pop("ed_save_now", False)
delete = cols[2].button("Delete", key="ed_delete", disabled=base is None)

if (validate or save) and mode == "YAML" and parsed is None:
    st.error("Not saved: the YAML does not parse (see above).")
    validate = save = False
if validate:
    state["ed_errors"] = editing.validate(draft) or editing.set_errors(store, draft)
    if not state["ed_errors"]:
        st.success("The document is valid.")
    else:
        st.rerun()
if save:
    outcome = editing.save(store, draft, user=user, base_version=base)
    if outcome.ok:
        doc = outcome.document
        load(doc.content, ident=f"{doc.tenant}/{doc.name}", base=doc.version)
        state["ed_pick_next"] = f"{doc.tenant}/{doc.name}"
        state["ed_flash"] = (f"Saved {doc.tenant}/{doc.name} as version {doc.version}." if doc.version != base
                             else "No changes: the stored version is the same.")
    else:
        state["ed_errors"] = outcome.errors
        state["ed_conflict"] = outcome.conflict
        if outcome.errors:
            state["ed_flash_error"] = f"Not saved: {len(outcome.errors)} problem(s), shown next to their fields."
    st.rerun()
if delete:
    try:
        store.delete_document(draft["tenant"], draft["name"], author=user.name, base_version=base)
    except NotFound as exc:
        st.error(str(exc))
    else:
        state["ed_flash"] = f"Deleted {draft['tenant']}/{draft['name']} (restore it from Versions)."
        for key in ("ed_draft", "ed_ident", "ed_base"):
            state.pop(key, None)
        state["ed_pick_next"] = NEW
        st.rerun()
