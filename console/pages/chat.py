"""Chat lab: an OpenAI-compatible model that calls the gateway's tools over MCP; history in the store."""

import json
import os

import streamlit as st

from console import chat, llm, mcp_tools, ui

user = ui.require_user()
store = ui.store()
state = st.session_state
defaults = llm.defaults()

st.title("Chat lab")

# -- conversations ------------------------------------------------------------------
if "chat_pick_next" in state:
    state["chat_pick"] = state.pop("chat_pick_next")
chats = store.list_chats(user=user.name)
titles = {c.id: c.title for c in chats}
options = [""] + [c.id for c in chats]
if state.get("chat_pick") not in options:
    state["chat_pick"] = ""
cols = st.columns([3, 2, 1, 1])
chat_id = cols[0].selectbox("Conversation", options, key="chat_pick",
                            format_func=lambda cid: titles.get(cid, "+ New chat"))
current = next((c for c in chats if c.id == chat_id), None)
if current is not None:
    new_title = cols[1].text_input("Title", current.title, key=f"chat_title_{current.id}")
    if cols[2].button("Rename", key="chat_rename"):
        store.update_chat(current.id, title=new_title.strip() or current.title)
        st.rerun()
    if cols[3].button("Delete", key="chat_delete"):
        store.delete_chat(current.id)
        state["chat_pick_next"] = ""
        st.rerun()

# -- settings ------------------------------------------------------------------------
saved = dict(current.settings) if current else {}
with st.expander("Model and server", expanded=current is None):
    cols = st.columns(2)
    with cols[0]:
        prefix = ui.pick_prefix(store, user, key=f"chat_prefix_{chat_id}", default=current.prefix if current else "")
    gateway_key = cols[1].text_input("Gateway API key (routers with auth)", type="password",
                                     key="chat_gateway_key")
    cols = st.columns(3)
    base_url = cols[0].text_input("Provider base URL", saved.get("base_url", defaults["base_url"]),
                                  key=f"chat_base_{chat_id}")
    model = cols[1].text_input("Model", saved.get("model", defaults["model"]), key=f"chat_model_{chat_id}")
    # The key is never shown back: the field starts empty and an empty field means the environment's key.
    typed_key = cols[2].text_input("API key", type="password", key="chat_api_key",
                                   placeholder="using OPENAI_API_KEY" if os.environ.get("OPENAI_API_KEY")
                                   else "none")
    system_prompt = st.text_area("System prompt", saved.get("system_prompt", ""), key=f"chat_system_{chat_id}",
                                 height=80)
settings = {"base_url": base_url.strip(), "model": model.strip(), "system_prompt": system_prompt}


# -- history ---------------------------------------------------------------------------
def show_tool(message, container):
    """One executed tool call: arguments, result, latency."""
    latency = message.get("_latency_ms")
    label = f":material/build: {message.get('_name', 'tool')}" + (f" · {latency:.0f} ms" if latency is not None else "")
    if message.get("_is_error"):
        label += " · error"
    with container.expander(label, expanded=False):
        st.markdown("**Arguments**")
        args = message.get("_arguments")
        st.code(json.dumps(args, indent=2) if not isinstance(args, str) else args, language="json")
        st.markdown("**Result**")
        st.code(message.get("content") or "", language="text")


history = [m.content for m in store.chat_messages(current.id)] if current else []
for message in history:
    role = message.get("role")
    if role == "user":
        st.chat_message("user").markdown(message.get("content") or "")
    elif role == "assistant" and message.get("content"):
        st.chat_message("assistant").markdown(message["content"])
    elif role == "tool":
        show_tool(message, st.chat_message("assistant", avatar=":material/build:"))

if "chat_error" in state:
    st.error(state.pop("chat_error"))

prompt = st.chat_input("Ask something that needs the server's tools", disabled=prefix is None)
if prompt:
    st.chat_message("user").markdown(prompt)
    pending = [{"role": "user", "content": prompt}]
    saved_chat = {"session": current}

    def persist(message):
        """Store the message (creating the conversation on its first answer)."""
        if saved_chat["session"] is None:
            saved_chat["session"] = store.create_chat(user.name, title=chat.title_from(prompt), prefix=prefix,
                                                      settings=settings)
        elif saved_chat["session"].settings != settings or saved_chat["session"].prefix != prefix:
            store.update_chat(saved_chat["session"].id, settings=settings)
        for item in pending + [message]:
            store.add_chat_message(saved_chat["session"].id, item["role"], item)
        pending.clear()

    try:
        client = llm.ChatClient(base_url=settings["base_url"], model=settings["model"],
                                api_key=typed_key or defaults["api_key"])
        tools = mcp_tools.GatewayTools(mcp_tools.endpoint(ui.gateway_url(), prefix), api_key=gateway_key)
        specs = chat.openai_tools(tools.list_tools())
        box = st.chat_message("assistant")
        buffer = {"text": "", "slot": box.empty()}

        def on_text(delta):
            buffer["text"] += delta
            buffer["slot"].markdown(buffer["text"] + "▌")

        def on_message(message):
            persist(message)
            if message["role"] == "assistant":
                buffer["slot"].markdown(message.get("content") or "")
                buffer["text"] = ""
            else:
                show_tool(message, box)
                buffer["slot"] = box.empty()

        chat.run_turn(client, tools, chat.conversation(system_prompt, history + pending),
                      tool_specs=specs, on_text=on_text, on_message=on_message)
        tools.close()
    except llm.LlmError as exc:
        state["chat_error"] = f"The model failed: {exc}" + ("" if saved_chat["session"] else
                                                             " Your message was not saved; send it again.")
    except mcp_tools.McpCallError as exc:
        state["chat_error"] = f"The gateway failed: {exc}"
    if saved_chat["session"] is not None:
        state["chat_pick_next"] = saved_chat["session"].id
    st.rerun()
