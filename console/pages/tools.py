"""Tool runner: a form generated from each tool's input schema; calls go through the gateway over MCP."""

import json

import streamlit as st

from console import mcp_tools, schema_form, ui

user = ui.require_user()
store = ui.store()
state = st.session_state

st.title("Tool runner")
cols = st.columns([2, 2])
with cols[0]:
    prefix = ui.pick_prefix(store, user, key="tr_prefix")
if prefix is None:
    st.stop()
api_key = cols[1].text_input("Gateway API key (routers with auth)", type="password", key="tr_api_key")
url = mcp_tools.endpoint(ui.gateway_url(), prefix)
st.caption(f"Endpoint: {url}")

cache = state.setdefault("tr_tools", {})
if st.button("Reload tools", key="tr_reload"):
    cache.pop(url, None)
if url not in cache:
    try:
        with mcp_tools.GatewayTools(url, api_key=api_key, timeout=20) as client:
            cache[url] = client.list_tools()
    except mcp_tools.McpCallError as exc:
        st.error(f"Cannot list the tools: {exc}")
        st.stop()
tools = cache[url]
if not tools:
    st.info("This server exposes no tools.")
    st.stop()
names = [t["name"] for t in tools]
name = st.selectbox("Tool", names, key="tr_tool")
tool = tools[names.index(name)]
if tool.get("description"):
    st.markdown(tool["description"])
form = schema_form.fields(tool.get("inputSchema"))
errors = state.get("tr_errors", {}).get(name, {})
raw = {}
with st.form(f"tr_form_{prefix}_{name}"):
    if not form:
        st.caption("This tool takes no arguments.")
    for field in form:
        key = f"tr_arg_{prefix}_{name}_{field.name}"
        if field.widget == "checkbox":
            raw[field.name] = st.checkbox(field.label, value=field.initial(), key=key, help=field.description or None)
        elif field.widget == "select":
            options = field.options
            initial = field.initial()
            raw[field.name] = st.selectbox(field.label, options, index=options.index(initial)
                                           if initial in options else 0, key=key, help=field.description or None)
        elif field.widget == "json":
            raw[field.name] = st.text_area(field.label, value=field.initial(), key=key, height=90,
                                           help=(field.description + " " if field.description else "") + "(JSON)")
        else:
            raw[field.name] = st.text_input(field.label, value=field.initial(), key=key,
                                            help=field.description or None)
        if field.name in errors:
            st.error(f"{field.name}: {errors[field.name]}")
    submitted = st.form_submit_button("Call tool", type="primary")

if submitted:
    parsed = schema_form.arguments(form, raw)
    state.setdefault("tr_errors", {})[name] = parsed.errors
    if parsed.errors:
        st.rerun()
    try:
        with mcp_tools.GatewayTools(url, api_key=api_key) as client:
            result = client.call_tool(name, parsed.arguments)
    except mcp_tools.McpCallError as exc:
        state["tr_result"] = {"tool": name, "failure": str(exc), "arguments": parsed.arguments}
    else:
        state["tr_result"] = {"tool": name, "arguments": parsed.arguments, "result": result.result,
                              "latency_ms": result.latency_ms, "text": result.text, "is_error": result.is_error}

outcome = state.get("tr_result")
if outcome and outcome["tool"] == name:
    st.subheader("Result")
    st.caption("Arguments sent: " + json.dumps(outcome["arguments"]))
    if "failure" in outcome:
        st.error(outcome["failure"])
    else:
        st.caption(f"{outcome['latency_ms']:.0f} ms")
        if outcome["is_error"]:
            st.error(f"The tool reported an error: {outcome['text']}")
        else:
            st.code(outcome["text"], language="json" if outcome["text"].lstrip().startswith(("{", "[")) else "text")
        with st.expander("Raw MCP result"):
            st.json(outcome["result"])
