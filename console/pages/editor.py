"""Editor: a document in form mode or YAML mode; validation errors next to their fields; versioned saves.

Every widget key carries the form key (``editing.form_key``: document and version), so a value typed
for one document can never show up in, or be saved into, another. Form mode shows one tool at a time
(searched by name) and bulk edits per REST server, so a document of thousands of tools stays quick. A
closed section (a REST server, a router's tool shaping, the upstream MCP servers) is laid out only once
opened, and a save that goes through shows its outcome in the same run: each run redraws the page in the
browser, which costs more than the run itself.
"""

import pandas as pd
import streamlit as st
import yaml

from console import access, editing, ui
from mcpgw_sdk.config_model import MCP_TYPES
from mcpgw_sdk.errors import ConfigError, NotFound

NEW = "+ New document"
W = "ed_w_"  # prefix of every widget key, dropped when another document (or version) is loaded
LIVE_YAML = 20_000  # characters: a longer YAML text is parsed only on Validate, Save or a switch to Form
SHOWN_PROBLEMS = 20  # problems listed next to the buttons (each also shows at its field)
TOOL_OPTIONS = 100  # tools offered in the picker at once (the search narrows a longer list)

user = ui.require_user()
store = ui.store()
state = st.session_state


def k(name):
    """The widget key of ``name`` in the form of the loaded document and version.

    A generation follows the form key: the browser keeps a widget's last value under its key and sends it
    back, so a field the page changed itself (a bulk edit, an added tool) must come back under a new key.
    """
    return f"{state.get('ed_keys')}{name}"


def load(content, *, ident, base):
    """Make ``content`` the working copy (version ``base`` of ``ident``)."""
    state["ed_draft"] = editing.clone(content)
    state["ed_ident"] = ident
    state["ed_base"] = base
    state["ed_form"] = editing.form_key(ident, base)
    state["ed_errors"] = []
    state["ed_conflict"] = None
    for key in ("ed_outcome", "ed_yaml_applied", "ed_tool_shown", "ed_tool_next"):
        state.pop(key, None)
    ui.reset_keys("ed_t_")
    forget_widgets()


def forget_widgets():
    """Drop widget values and table rows, so every field is read from the draft again (under new keys)."""
    ui.reset_keys(W)
    ui.reset_keys("ed_rows_")
    state["ed_gen"] = state.get("ed_gen", 0) + 1
    state["ed_keys"] = f"{W}{state.get('ed_form')}#{state['ed_gen']}:"


def rows(name, make):
    """The rows a data editor starts from, fixed until the next load (edits are deltas on them)."""
    return ui.remember(f"ed_rows_{k(name)}", lambda: pd.DataFrame(make()))


def table(name, make, columns, **kwargs):
    """A dynamic data editor whose edited rows come back as a list of dicts."""
    data = rows(name, make)
    for col in columns:
        if col not in data.columns:
            data[col] = pd.Series(dtype=object)
    edited = st.data_editor(data[list(columns)], key=k(name), num_rows="dynamic", width="stretch",
                            hide_index=True, **kwargs)
    return edited.to_dict("records")


def document_labels():
    """``tenant/name`` of the documents the user may open, listed again only when the configuration changed.

    Listing reads every document in full; the revision is one query, and every save, delete or
    membership change moves it.
    """
    stamp = (store.revision(), user)
    listed = state.get("ed_docs")
    if listed is None or listed[0] != stamp:
        listed = state["ed_docs"] = (stamp, [f"{d.tenant}/{d.name}" for d in access.visible_documents(store, user)])
    return listed[1]


def pick_document():
    labels = [NEW] + document_labels()
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
        try:
            doc = store.get_document(*choice.split("/", 1))
        except NotFound:
            state.pop("ed_docs", None)
            st.error(f"{choice} does not exist any more.")
            st.stop()
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
        box = lazy_expander(f"Server {server.get('name', i)}", f"srv{i}", errors=errors, path=f"servers[{i}]",
                            tables=[f"srv{i}_config"])
        if box is None:
            continue
        with box:
            editing.put(server, "description", st.text_input("Description", server.get("description", ""),
                                                             key=k(f"srv{i}_desc")))
            allowed = server.get("allowedTools")
            editing.put(server, "allowedTools", editing.split_list(st.text_input(
                "Allowed tools (comma separated; empty with none listed before: all tools)",
                ", ".join(allowed or []), key=k(f"srv{i}_allowed"))), keep_empty=True)
            st.caption("Config (templates, seen as config.*)")
            editing.put(server, "config", editing.rows_to_mapping(table(
                f"srv{i}_config", lambda s=server: editing.mapping_to_rows(s.get("config")), ["key", "value"])),
                keep_empty=True)
            ui.field_errors(errors, f"servers[{i}]")
            bulk_form(draft, i, server)
    ui.field_errors([e for e in errors if e.path == "servers"], "servers")

    tools_section(draft, errors)

    st.subheader("Upstream MCP servers")
    box = lazy_expander(f"Upstream servers ({len(draft.get('mcpServers') or [])})", "mcp", errors=errors,
                        path="mcpServers", tables=["mcp"])
    if box is not None:
        with box:
            upstream = table("mcp", lambda: editing.mcp_to_rows(draft.get("mcpServers")), editing.MCP_COLUMNS,
                             column_config={"type": st.column_config.SelectboxColumn(
                                 options=list(MCP_TYPES))})
            servers = editing.rows_to_mcp(upstream, original=draft.get("mcpServers"))
            if servers or "mcpServers" in draft:
                draft["mcpServers"] = servers
            ui.field_errors(errors, "mcpServers")

    st.subheader("Prompts")
    prompts_text = st.text_area("Prompts (YAML list)", yaml.safe_dump(draft.get("prompts"), sort_keys=False).strip()
                                if draft.get("prompts") else "", key=k("prompts"), height=120)
    try:
        prompts = yaml.safe_load(prompts_text) if prompts_text.strip() else []
    except yaml.YAMLError as exc:
        st.error(f"Prompts: not YAML: {exc}")
    else:
        if prompts or "prompts" in draft:
            draft["prompts"] = prompts or []
    ui.field_errors(errors, "prompts")


def lazy_expander(label, name, *, errors, path, tables):
    """A closed expander whose content is neither run nor sent while it stays closed: None then.

    Open, the caller fills it. It opens by itself when ``path`` has problems. Its state outlives a
    bulk edit (which renews the widget keys), not a load. The rows of ``tables`` in it are read from
    the draft again when it reopens: the browser forgot the edits made to them, the draft did not.
    """
    here = bool(editing.errors_at(errors, path))
    box = st.expander(label, expanded=here, key=f"ed_t_{state['ed_form']}:{name}{'!' if here else ''}",
                      on_change="rerun")
    if box.open:
        return box
    for table_name in tables:
        state.pop(f"ed_rows_{k(table_name)}", None)
    return None


def bulk_form(draft, i, server):
    """Edits to many tools of one REST server at once: a header, a timeout, allowing or denying them."""
    name = server.get("name", "")
    with st.form(k(f"bulk{i}"), enter_to_submit=False):  # Enter in a field must not change 1,500 tools
        st.markdown("**Bulk edit** — the tools whose name contains the filter (empty: all of them)")
        cols = st.columns([2, 2, 3, 1])
        query = cols[0].text_input("Tool filter", key=k(f"bulk{i}_query"), placeholder="e.g. get_")
        header = cols[1].text_input("Header name", key=k(f"bulk{i}_header"), placeholder="Authorization")
        value = cols[2].text_input("Header value (template; empty removes it)", key=k(f"bulk{i}_value"),
                                   placeholder="Bearer {{ env('API_TOKEN') }}")
        timeout = cols[3].text_input("Timeout (s)", key=k(f"bulk{i}_timeout"), placeholder="30")
        buttons = st.columns(4)
        set_header = buttons[0].form_submit_button("Set header on the server's tools")
        set_timeout = buttons[1].form_submit_button("Set timeout on the server's tools")
        allow = buttons[2].form_submit_button("Allow matching tools")
        deny = buttons[3].form_submit_button("Deny matching tools")
    if not (set_header or set_timeout or allow or deny):
        return
    matches = editing.matching_tools(draft, query)
    exposed = set(editing.server_tools(draft, name))
    mine = [t for t in matches if t in exposed]
    if set_header:
        if not header.strip():
            st.error("Header name: required")
            return
        changed = editing.set_header(draft, mine, header, value)
        done = f"Header {header.strip()} {'set' if value else 'removed'} on {changed} of {len(mine)} tool(s) of {name}."
    elif set_timeout:
        try:
            seconds = float(timeout) if timeout.strip() else None
            changed = editing.set_timeout(draft, mine, seconds)
        except (ValueError, ConfigError) as exc:
            st.error(f"Timeout: must be a number of seconds > 0 ({exc})")
            return
        done = f"Timeout {'set' if seconds else 'removed'} on {changed} of {len(mine)} tool(s) of {name}."
    else:
        names = [str(draft["tools"][t].get("name")) for t in matches]
        changed = editing.allow_tools(draft, name, names, allowed=allow)
        done = f"{'Allowed' if allow else 'Denied'} {changed} tool(s) on {name}."
    forget_widgets()
    state["ed_outcome"] = ("success", done + " Save to keep it.", [])
    st.rerun()


def tools_section(draft, errors):
    """One tool at a time: search by name, pick one, edit it; problems say which tools they are in."""
    st.subheader("Tools")
    tools = draft.setdefault("tools", [])
    bad = editing.tool_errors(errors)
    pick, search = f"ed_t_{state['ed_form']}:pick", f"ed_t_{state['ed_form']}:query"
    if "ed_tool_next" in state:  # jump to a tool (just added, or the first with a problem)
        state[pick] = state.pop("ed_tool_next")
        state[search] = ""
    query = st.text_input("Search tools by name", key=search, placeholder="part of a tool name")
    matches = editing.matching_tools(draft, query)
    if bad:
        names = ", ".join(str(tools[i].get("name", i)) for i in sorted(bad)[:10] if i < len(tools))
        st.error(f"{len(bad)} tool(s) with problems: {names}{' …' if len(bad) > 10 else ''}", icon="⚠️")
    st.caption(f"{len(matches)} of {len(tools)} tool(s)" + (f" match {query.strip()!r}" if query.strip() else ""))
    if matches:
        if state.get(pick) not in matches:
            state[pick] = next((i for i in matches if i in bad), matches[0])
        options = matches[:TOOL_OPTIONS]
        if state[pick] not in options:  # the picked tool (a jump to a problem) is always offered
            options = sorted(options + [state[pick]])
        if len(matches) > len(options):
            st.caption(f"The list offers {len(options)} of them: search by name to reach the others.")
        i = st.selectbox("Tool", options, key=pick,
                         format_func=lambda t: f"{tools[t].get('name', t)}{'  ⚠️' if t in bad else ''}")
        if state.get("ed_tool_shown") != i:  # rows of another tool's tables are stale: read them from the draft
            ui.reset_keys(f"ed_rows_{k('tool')}")
            state["ed_tool_shown"] = i
        tool_form(draft, i, tools[i], errors)
    with st.form(k("add_tool"), clear_on_submit=True):
        cols = st.columns([2, 1, 4])
        name = cols[0].text_input("New tool name", key="ed_add_tool_name")
        method = cols[1].selectbox("Method", editing.HTTP_METHODS, key="ed_add_tool_method")
        endpoint = cols[2].text_input("New tool endpoint", key="ed_add_tool_endpoint", placeholder="{{ config.base }}/path")
        if st.form_submit_button("Add tool"):
            problems = editing.add_tool(draft, name=name, method=method, endpoint=endpoint)
            for problem in problems:
                st.error(str(problem))
            if not problems:
                forget_widgets()
                state["ed_tool_next"] = len(tools) - 1
                st.rerun()


def shaping_form(i, router, errors):
    """A router's tool shaping (``routers[i].tools``): one row per reshaped tool (docs/tool-shaping.md)."""
    path = f"routers[{i}]"
    box = lazy_expander(f"Tool shaping — {router.get('prefix') or i}", f"shape{i}", errors=errors,
                        path=f"{path}.tools", tables=[f"shape{i}"])
    if box is None:
        return
    with box:
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


def tool_form(draft, i, tool, errors):
    mine = editing.errors_at(errors, f"tools[{i}]")
    with st.expander(f"Tool {tool.get('name', i)}", expanded=True):
        cols = st.columns([1, 4])
        methods = list(editing.HTTP_METHODS)
        method = tool.get("method", editing.NEW_METHOD).upper()
        tool["method"] = cols[0].selectbox("Method", methods, methods.index(method) if method in methods else 0,
                                           key=k(f"tool{i}_method"))
        tool["endpoint"] = cols[1].text_input("Endpoint", tool.get("endpoint", ""), key=k(f"tool{i}_endpoint"))
        for error in mine:  # right under the fields they are about, above the longer tables
            st.error(f"`{error.path}`: {error.reason}", icon="⚠️")
        editing.put(tool, "description", st.text_input("Description", tool.get("description", ""),
                                                       key=k(f"tool{i}_desc")))
        st.caption("Arguments")
        arg_rows = table(f"tool{i}_args", lambda: editing.args_to_rows(tool), editing.ARG_COLUMNS,
                         column_config={
                             "position": st.column_config.SelectboxColumn(options=list(editing.ARG_POSITIONS)),
                             "type": st.column_config.SelectboxColumn(options=list(editing.ARG_TYPES)),
                             "required": st.column_config.CheckboxColumn()})
        tool["args"] = editing.rows_to_args(arg_rows, original=tool.get("args"))
        with st.form(k(f"add_arg{i}"), clear_on_submit=True):
            cols = st.columns([2, 1, 1, 1, 3])
            name = cols[0].text_input("New argument", key=k(f"arg{i}_name"))
            position = cols[1].selectbox("Position", editing.ARG_POSITIONS, key=k(f"arg{i}_position"))
            kind = cols[2].selectbox("Type", editing.ARG_TYPES, key=k(f"arg{i}_type"))
            required = cols[3].checkbox("Required", key=k(f"arg{i}_required"))
            description = cols[4].text_input("Argument description", key=k(f"arg{i}_desc"))
            if st.form_submit_button("Add argument"):
                problems = editing.add_arg(tool, name=name, position=position, type=kind, required=required,
                                           description=description)
                for problem in problems:
                    st.error(str(problem))
                if not problems:
                    forget_widgets()
                    st.rerun()
        st.caption("Headers (templates)")
        editing.put(tool, "headers", editing.rows_to_mapping(table(
            f"tool{i}_headers", lambda: editing.mapping_to_rows(tool.get("headers")), ["key", "value"])))
        for field, label in (("requestBody", "Request body (template)"), ("responseBody", "Response body (template)")):
            text = st.text_area(label, tool.get(field, ""), key=k(f"tool{i}_{field}"), height=80)
            if text.strip():
                tool[field] = text
            else:
                tool.pop(field, None)
        if st.button("Remove this tool", key=k(f"tool{i}_remove")):
            draft["tools"].pop(i)
            for server in draft.get("servers") or []:
                if tool.get("name") in (server.get("allowedTools") or []):
                    server["allowedTools"].remove(tool["name"])
            forget_widgets()
            st.rerun()


def yaml_mode():
    """The YAML text; a short one is checked as it changes, a long one on Validate, Save or a switch to Form."""
    key = k("yaml")
    if key not in state:
        state[key] = editing.to_yaml(state["ed_draft"])
        state["ed_yaml_applied"] = state[key]
    text = st.text_area("YAML", key=key, height=480)
    if len(text) <= LIVE_YAML:
        problem = apply_yaml()
        if problem:
            st.error(f"The YAML does not parse: {problem}")
    elif text != state.get("ed_yaml_applied"):
        st.caption("Changed: checked when you press Validate or Save.")


def apply_yaml():
    """Make the YAML text (when it changed) the draft; the parse error as text, or None."""
    text = state.get(k("yaml"))
    if text is None or text == state.get("ed_yaml_applied"):
        return None
    try:
        parsed = editing.parse_yaml(text, source="YAML")
    except ConfigError as exc:
        return str(exc)
    state["ed_draft"].clear()
    state["ed_draft"].update(parsed)
    state["ed_yaml_applied"] = text
    return None


def switch_mode(mode):
    """Changing mode: carry YAML edits to the form (or stay in YAML when they do not parse); drop old errors."""
    last = state.get("ed_last_mode")
    if last == "YAML" and mode == "Form":
        problem = apply_yaml()
        if problem:
            state["ed_mode_next"] = "YAML"
            state["ed_outcome"] = ("error", f"Still in YAML mode: the YAML does not parse: {problem}", [])
            st.rerun()
    state["ed_errors"] = []
    state.pop("ed_outcome", None)
    state.pop("ed_yaml_applied", None)
    forget_widgets()
    state["ed_last_mode"] = mode


def heading(draft, base):
    """The line under the picker: which document, which version, how many tools."""
    return (f"{draft.get('tenant')}/{draft.get('name')} · "
            + (f"editing version {base}" if base else "new document, not saved yet")
            + f" · {len(draft.get('tools') or [])} tool(s)")


def saved_in_place(doc):
    """Make the stored ``doc`` the draft without laying the form out again: its fields show what was saved.

    The widget keys stay, and with them what the browser holds; the tool shown, the search and the open
    sections move to the new version's form key.
    """
    old, new = state["ed_form"], editing.form_key(state["ed_ident"], doc.version)
    mine = f"ed_t_{old}:"
    for key in [key for key in state.keys() if str(key).startswith(mine) and new != old]:
        state[f"ed_t_{new}:{key[len(mine):]}"] = state[key]
    state["ed_draft"] = editing.clone(doc.content)
    state["ed_base"] = doc.version
    state["ed_form"] = new
    state["ed_errors"] = []
    state["ed_conflict"] = None


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
        # The draft (which holds every edit) moves onto the current version; the fields are read from it again.
        state["ed_base"] = conflict.current_version
        state["ed_form"] = editing.form_key(state["ed_ident"], conflict.current_version)
        forget_widgets()
        state["ed_conflict"] = None
        state["ed_save_now"] = True
        st.rerun()
    if cols[2].button("Keep editing", key="ed_keep"):
        state["ed_conflict"] = None
        st.rerun()


def outcome_box(box):
    """What the last Validate or Save found, next to the buttons: valid / saved, or the problems."""
    outcome = state.get("ed_outcome")
    if not outcome:
        return
    kind, message, problems = outcome
    with box:
        if kind == "success":
            st.success(message)
            return
        listed = "\n".join(f"- `{e.path or 'document'}`: {e.reason}" for e in problems[:SHOWN_PROBLEMS])
        more = f"\n- … and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
        st.error(message + ("\n\n" + listed + more if problems else ""), icon="⚠️")


def problems_found(kind, errors):
    """Keep ``errors`` for the fields and the summary; jump to the first tool with a problem."""
    state["ed_errors"] = errors
    what = "Not saved" if kind == "save" else "Not valid"
    where = " shown next to their fields" if state.get("ed_mode") == "Form" else ""
    state["ed_outcome"] = ("error", f"{what}: {len(errors)} problem(s){',' if where else ''}{where}.", errors)
    bad = editing.tool_errors(errors)
    if bad and state.get("ed_mode") == "Form":
        state["ed_tool_next"] = min(bad)


st.title("Editor")
if "ed_flash" in state:
    st.success(state.pop("ed_flash"))
pick_document()
if state.get("ed_ident") is None and "ed_draft" not in state:
    new_form()
    st.stop()

draft = state["ed_draft"]
errors = state.get("ed_errors") or []
base = state.get("ed_base")
head = st.empty()
head.caption(heading(draft, base))
if "ed_mode_next" in state:
    state["ed_mode"] = state.pop("ed_mode_next")
mode = st.radio("Mode", ["Form", "YAML"], horizontal=True, key="ed_mode")
if state.get("ed_last_mode") != mode:
    switch_mode(mode)

# The buttons and what they found sit above the form, however long it is: a failed save's problems show
# where the user just clicked (each also at its field). The form is laid out, and read, before they act.
with st.container(key="ed_actions", border=True):
    conflict_box()
    cols = st.columns([1, 1, 1, 6], vertical_alignment="top")
    validate = cols[0].button("Validate", key="ed_validate")
    save = cols[1].button("Save", type="primary", key="ed_save") or state.pop("ed_save_now", False)
    delete = cols[2].button("Delete", key="ed_delete", disabled=base is None)
    outcome = cols[3].container()

if mode == "Form":
    form_mode(draft, errors)
else:
    yaml_mode()

if (validate or save) and mode == "YAML":
    problem = apply_yaml()
    if problem:
        state["ed_errors"] = []
        state["ed_outcome"] = ("error", f"{'Not saved' if save else 'Not valid'}: the YAML does not parse: {problem}",
                               [])
        validate = save = False
if validate:
    found = editing.validate(draft) or editing.set_errors(store, draft)
    if found:
        problems_found("validate", found)
        st.rerun()
    state["ed_errors"] = []
    state["ed_outcome"] = ("success", "The document is valid.", [])
    if errors:
        st.rerun()  # take the old problems off the fields
if save:
    ident = state.get("ed_ident")
    foreign = editing.foreign_errors(draft, ident=ident, form=state.get("ed_form"), base=base)
    outcome_of = None if foreign else editing.save(store, draft, user=user, base_version=base)
    if outcome_of is not None and outcome_of.ok:
        doc = outcome_of.document
        if base is not None and not errors:  # the page shows what was saved: no second run
            saved_in_place(doc)
            head.caption(heading(state["ed_draft"], doc.version))
            save = False
        else:  # a new document joins the picker; problems shown at fields go
            load(doc.content, ident=f"{doc.tenant}/{doc.name}", base=doc.version)
            state["ed_pick_next"] = f"{doc.tenant}/{doc.name}"
        state["ed_outcome"] = ("success", f"Saved {doc.tenant}/{doc.name} as version {doc.version}."
                               if doc.version != base else "No changes: the stored version is the same.", [])
    elif foreign:
        problems_found("save", foreign)
    else:
        state["ed_conflict"] = outcome_of.conflict
        if outcome_of.errors:
            problems_found("save", outcome_of.errors)
        else:
            state["ed_errors"] = []
            state.pop("ed_outcome", None)
if save:
    st.rerun()
if delete:
    try:
        store.delete_document(draft["tenant"], draft["name"], author=user.name, base_version=base)
    except NotFound as exc:
        st.error(str(exc))
    else:
        state["ed_flash"] = f"Deleted {draft['tenant']}/{draft['name']} (restore it from Versions)."
        for key in ("ed_draft", "ed_ident", "ed_base", "ed_form", "ed_outcome"):
            state.pop(key, None)
        state["ed_pick_next"] = NEW
        st.rerun()
outcome_box(outcome)
