"""The mcpgw console: sign in, then pages by role (``streamlit run console/app.py``)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from console import access, ui
from mcpgw_sdk.access import Access
from mcpgw_sdk.errors import AuthError

HERE = Path(__file__).parent
#: The browser-tab icon, a file of the package: a ``:material/…:`` page icon would make the browser
#: fetch it from fonts.gstatic.com, and the console must work without the internet.
FAVICON = HERE / "assets" / "favicon.svg"


def login_page() -> None:
    """Sign in with a user of the store."""
    st.title("mcpgw console")
    st.caption(f"Database: {ui.store().url}  ·  Gateway: {ui.gateway_url()}")
    with st.form("login"):
        name = st.text_input("User name", key="login_name")
        password = st.text_input("Password", type="password", key="login_password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        try:
            st.session_state["user"] = access.login(ui.store(), name, password)
        except AuthError as exc:
            st.error(str(exc))
        else:
            st.rerun()


def pages_for(user) -> dict[str, list]:
    """The navigation sections the user's role sees."""
    def page(file: str, title: str, icon: str):
        return st.Page(str(HERE / "pages" / file), title=title, icon=icon)

    sections = {
        "Configure": [page("servers.py", "Servers", ":material/dns:"),
                      page("editor.py", "Editor", ":material/edit:"),
                      page("importer.py", "Import", ":material/upload_file:"),
                      page("versions.py", "Versions", ":material/history:")],
        "Try": [page("chat.py", "Chat lab", ":material/chat:"),
                page("tools.py", "Tool runner", ":material/build:")],
        "Operate": [page("usage.py", "Usage", ":material/monitoring:"),
                    page("users.py", "Users & keys" if Access(user).may_manage_users() else "API keys", ":material/key:"),
                    page("credentials.py", "My credentials", ":material/password:")],
    }
    return sections


def database_page() -> None:
    """The only page while the database cannot be used: what is wrong and the one command that fixes it."""
    problem, command = ui.database_problem() or ("The database is ready: reload this page.", "")
    st.title("mcpgw console")
    st.error(problem)
    if command:
        st.markdown("Run this, then reload this page:")
        st.code(command, language="sh")


def main() -> None:
    """Render the app: the login page, or the pages the signed-in user may use."""
    st.set_page_config(page_title="mcpgw console", page_icon=FAVICON, layout="wide")
    if ui.database_problem():
        # A navigation of its own, hidden: without one Streamlit would list the files of pages/ instead.
        st.navigation([st.Page(database_page, title="Database", url_path="database")], position="hidden").run()
        return
    user = ui.user()
    if user is None:
        st.navigation([st.Page(login_page, title="Sign in", url_path="login")], position="hidden").run()
        return
    with st.sidebar:
        st.markdown(f"Signed in as **{user.name}** ({user.role})")
        if st.button("Sign out", key="sign_out"):
            ui.sign_out()
            st.rerun()
    st.navigation(pages_for(user)).run()


main()
