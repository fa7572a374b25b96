"""The console in a real browser: headless Chromium (Debian's) driven by Playwright, against a real
console subprocess, a real gateway, the demo REST backend and the fake OpenAI server.

Screenshots of each page go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from mcpgw_sdk import open_store
from tests.browser import PW, TIMEOUT, browser_missing, choose, fill, goto, idle, login, open_page, shot
from tests.fixtures_store import seed_console_users
from tests.helpers import ROOT, Procs, free_port, python, wait_for, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def openapi_spec(base_url: str) -> dict:
    """An OpenAPI 3 spec of the demo backend's user lookup."""
    return {"openapi": "3.0.3", "info": {"title": "People", "version": "1"}, "servers": [{"url": base_url}],
            "paths": {"/users/{email}": {"get": {
                "operationId": "getUser", "summary": "Get one user by email",
                "parameters": [{"name": "email", "in": "path", "required": True, "schema": {"type": "string"},
                                "description": "The user's email"}],
                "responses": {"200": {"description": "the user"}}}}}}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Backend, gateway, fake OpenAI and console processes on one SQLite database."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests need {missing}")
        pytest.skip(f"browser tests need {missing}")
    tmp = tmp_path_factory.mktemp("console")
    db = f"sqlite:///{tmp / 'mcpgw.db'}"
    store = open_store(db, check=False)
    store.upgrade()
    seed_console_users(store, PW)
    store.save_document({"name": "secret", "tenant": "beta", "routers": [{"prefix": "/beta/secret",
                                                                         "server": "s"}],
                         "servers": [{"name": "s", "allowedTools": []}], "tools": []}, author="admin")
    store.save_document({"name": "inventory", "tenant": "acme", "routers": [{"prefix": "/acme/inventory",
                                                                            "server": "s"}],
                         "servers": [{"name": "s", "allowedTools": []}], "tools": []}, author="admin")
    ports = {name: free_port() for name in ("backend", "gateway", "openai", "console")}
    mcpgw = str(Path(sys.executable).parent / "mcpgw")
    procs = Procs(tmp)
    try:
        procs.start([python(), "-m", "gateway_server.demo.backend", "--port", str(ports["backend"])], name="backend")
        procs.start([mcpgw, "serve", "--db", db, "--port", str(ports["gateway"]), "--reload-interval", "0.5"],
                    name="gateway")
        procs.start([python(), str(ROOT / "tests" / "fixtures" / "fake_openai.py"), "--port", str(ports["openai"]),
                     "--api-key", "sk-test"], name="openai")
        gateway = f"http://127.0.0.1:{ports['gateway']}"
        procs.start([mcpgw, "console", "--db", db, "--port", str(ports["console"])], name="console",
                    env={"MCPGW_GATEWAY_URL": gateway, "OPENAI_BASE_URL": f"http://127.0.0.1:{ports['openai']}/v1",
                         "OPENAI_API_KEY": "sk-test", "OPENAI_MODEL": "fake-model"})
        console = f"http://127.0.0.1:{ports['console']}"
        wait_http(f"{console}/_stcore/health", timeout=60, status=200)
        wait_http(f"{gateway}/readyz", timeout=60, status=200)
        wait_http(f"http://127.0.0.1:{ports['backend']}/users", timeout=30, status=200)
        yield {"store": store, "console": console, "gateway": gateway, "tmp": tmp,
               "backend": f"http://127.0.0.1:{ports['backend']}", "procs": procs.items}
    finally:
        procs.stop()
        store.close()


@pytest.fixture
def page(browser, request):
    with open_page(browser, request, height=1600) as pg:
        yield pg


def mcp_tools(url: str) -> dict:
    """Tool name → input schema, as the official ``mcp`` client sees the endpoint."""
    import mcp

    async def run():
        async with mcp.Client(url) as client:
            result = await client.list_tools()
            return {t.name: t.input_schema for t in result.tools}

    # Playwright's sync API keeps an event loop in this thread; the client gets a thread of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result(timeout=60)


# -- tests --------------------------------------------------------------------------------
def test_admin_journey_import_edit_run_chat_rollback(stack, page):
    from playwright.sync_api import expect

    store = stack["store"]
    login(page, stack, "admin")
    expect(page.get_by_text(f"{stack['gateway']}/acme/inventory/mcp", exact=True)).to_be_visible()
    expect(page.get_by_text("state: serving").first).to_be_visible()
    shot(page, "01-servers")

    # Import an OpenAPI file and save it.
    spec_file = stack["tmp"] / "people.json"
    spec_file.write_text(json.dumps(openapi_spec(stack["backend"])))
    goto(page, "Import")
    page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(spec_file))
    expect(page.get_by_text("Recognised as: an OpenAPI spec")).to_be_visible()
    choose(page, "Tenant", "acme")
    fill(page, "Document name", "people")
    expect(page.get_by_text("Preview: 1 tool(s)")).to_be_visible()
    expect(page.get_by_role("cell", name="getUser", exact=True)).to_be_visible()
    shot(page, "02-import-preview")
    page.get_by_role("button", name="Save acme/people").click()
    expect(page.get_by_text("Saved acme/people as version 1.")).to_be_visible()
    assert store.get_document("acme", "people").content["tools"][0]["name"] == "getUser"
    endpoint = f"{stack['gateway']}/acme/people/mcp"
    wait_for(lambda: "getUser" in mcp_tools(endpoint), timeout=30, what="getUser served")

    # Add an argument in the form editor; the official client sees it.
    goto(page, "Editor")
    choose(page, "Document", "acme/people")
    expect(page.get_by_text("Tool getUser")).to_be_visible()  # the one tool shown, open
    page.get_by_role("textbox", name="New argument").fill("verbose")
    choose(page, "Type", "boolean")
    page.get_by_role("button", name="Add argument").click()
    idle(page)
    shot(page, "03-editor-form")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Saved acme/people as version 2.")).to_be_visible()
    schema = wait_for(lambda: (s := mcp_tools(endpoint)["getUser"]) and "verbose" in s.get("properties", {}) and s,
                      timeout=30, what="verbose argument served")
    assert schema["properties"]["verbose"]["type"] == "boolean"

    # Run the tool from the tool runner.
    goto(page, "Tool runner")
    choose(page, "Server", "/acme/people")
    page.get_by_role("textbox", name="email * (string)").fill("ada@example.com")
    page.get_by_role("button", name="Call tool").click()
    expect(page.get_by_text("Ada Lovelace").first).to_be_visible()
    shot(page, "04-tool-runner")

    # Chat: the model asks for the tool, the gateway runs it, the model answers with the result.
    goto(page, "Chat lab")
    choose(page, "Server", "/acme/people")
    page.get_by_test_id("stChatInputTextArea").fill('getUser {"email": "grace@example.com"}')
    page.get_by_test_id("stChatInputTextArea").press("Enter")
    expect(page.get_by_text("Tool result:").first).to_be_visible()
    expect(page.get_by_text("getUser ·").first).to_be_visible()
    shot(page, "05-chat")
    chats = store.list_chats(user="admin")
    assert len(chats) == 1
    roles = [m.role for m in store.chat_messages(chats[0].id)]
    assert roles == ["user", "assistant", "tool", "assistant"]
    tool_message = store.chat_messages(chats[0].id)[2].content
    assert "Grace Hopper" in tool_message["content"] and tool_message["_latency_ms"] > 0

    # Roll back to version 1: the argument is gone again.
    goto(page, "Versions")
    choose(page, "Document", "acme/people")
    expect(page.get_by_text("verbose").first).to_be_visible()
    shot(page, "06-versions")
    choose(page, "Restore version", "1")
    page.get_by_role("button", name="Restore version 1 as a new version").click()
    expect(page.get_by_text("Restore version 1 of acme/people?")).to_be_visible()  # asked first
    page.get_by_role("button", name="Yes", exact=True).click()
    expect(page.get_by_text("Restored version 1 of acme/people as version 3.")).to_be_visible()
    wait_for(lambda: "verbose" not in mcp_tools(endpoint)["getUser"].get("properties", {}), timeout=30,
             what="rollback served")

    for title, name in (("Usage", "07-usage"), ("Users & keys", "08-users")):
        goto(page, title)
        shot(page, name)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def test_member_does_not_see_other_tenants(stack, page):
    from playwright.sync_api import expect

    login(page, stack, "bob")
    expect(page.get_by_text("/beta/secret")).to_have_count(0)

    # Bob switches his endpoint off (the gateway answers 404 saying so) and on again: two new versions.
    store, switch = stack["store"], page.get_by_text("Enable /acme/inventory", exact=True)
    endpoint = f"{stack['gateway']}/acme/inventory/mcp"
    switch.click()
    expect(page.get_by_text("/acme/inventory is disabled.")).to_be_visible()
    assert store.get_document("acme", "inventory").content["routers"][0]["disabled"] is True
    wait_for(lambda: "is disabled" in requests.post(endpoint, json={}, timeout=5).text, timeout=30,
             what="the disabled endpoint's 404")
    shot(page, "13-servers-disabled")
    switch.click()
    expect(page.get_by_text("/acme/inventory is enabled.")).to_be_visible()
    assert "disabled" not in store.get_document("acme", "inventory").content["routers"][0]
    goto(page, "Versions")
    page.get_by_role("combobox", name="Document", exact=True).click()
    expect(page.get_by_role("option", name="acme/inventory")).to_be_visible()
    expect(page.get_by_role("option", name="beta/secret")).to_have_count(0)
    page.keyboard.press("Escape")
    goto(page, "API keys")
    shot(page, "09-member-keys")
    expect(page.get_by_role("heading", name="Users")).to_have_count(0)


def test_bad_input_is_shown_and_nothing_is_saved(stack, page):
    from playwright.sync_api import expect

    store = stack["store"]
    store.save_document({"name": "orders", "tenant": "acme", "routers": [{"prefix": "/acme/orders", "server": "o"}],
                         "servers": [{"name": "o", "allowedTools": ["list_orders"], "config": {}}],
                         "tools": [{"name": "list_orders", "method": "GET", "endpoint": "http://127.0.0.1:9/o"}]},
                        author="admin")
    versions = len(store.list_versions("acme", "orders"))
    login(page, stack, "admin")
    goto(page, "Editor")
    choose(page, "Document", "acme/orders")

    # A template that does not parse, shown inside its tool.
    expect(page.get_by_text("Tool list_orders")).to_be_visible()
    fill(page, "Endpoint", "http://127.0.0.1:9/o/{{ args.id ")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("template does not parse").first).to_be_visible()
    shot(page, "10-editor-template-error")

    # Invalid YAML.
    page.get_by_text("YAML", exact=True).click()
    idle(page)
    page.get_by_role("textbox", name="YAML", exact=True).fill("name: orders\ntenant: acme\nrouters: [\n")
    page.keyboard.press("Control+Enter")
    expect(page.get_by_text("The YAML does not parse").first).to_be_visible()
    shot(page, "11-editor-yaml-error")

    # A duplicate prefix.
    page.get_by_role("textbox", name="YAML", exact=True).fill(
        "name: orders\ntenant: acme\nrouters:\n- prefix: /beta/secret\n  server: o\nservers:\n- name: o\n")
    page.keyboard.press("Control+Enter")
    idle(page)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("also used by beta/secret").first).to_be_visible()
    assert len(store.list_versions("acme", "orders")) == versions

    # An LLM answering 500.
    goto(page, "Chat lab")
    choose(page, "Server", "/acme/orders")
    page.get_by_test_id("stChatInputTextArea").fill("[fail] list my orders")
    page.get_by_test_id("stChatInputTextArea").press("Enter")
    expect(page.get_by_text("HTTP 500").first).to_be_visible()
    shot(page, "12-chat-llm-error")
    assert not [c for c in store.list_chats(user="admin") if "fail" in c.title]


def test_console_command_is_headless(stack):
    assert shutil.which(str(Path(sys.executable).parent / "mcpgw"))
    log = stack["procs"][-1].output()
    assert "mcpgw console on http://127.0.0.1:" in log
    assert "Local URL" in log or "You can now view" in log or requests.get(stack["console"], timeout=5).ok


PAGES = ["Servers", "Editor", "Import", "Versions", "Chat lab", "Tool runner", "Usage", "Users & keys",
         "My credentials"]


def test_screenshots_of_every_page_and_the_versions_page_asks_first(stack, page):
    """One screenshot per console page (``test-artifacts/screenshots/page-*.png``), and on Versions: the
    diff comes first, the full versions are folded, rollback and delete ask before writing."""
    from playwright.sync_api import expect

    store = stack["store"]
    doc = store.get_document("beta", "secret").content
    doc["servers"][0]["description"] = "Second version"
    store.save_document(doc, author="admin", base_version=store.get_document("beta", "secret").version)
    before = store.get_document("beta", "secret").version
    login(page, stack, "admin")
    for title in PAGES:
        goto(page, title)
        shot(page, "page-" + title.lower().replace(" & ", "-").replace(" ", "-"))

    goto(page, "Versions")
    choose(page, "Document", "beta/secret")
    first_code = page.get_by_test_id("stCode").first
    expect(first_code).to_contain_text("+  description: Second version")
    full = page.get_by_test_id("stExpander").filter(has_text="in full")
    expect(full.get_by_text("(deleted)")).to_have_count(0)
    expect(full.locator("details")).not_to_have_attribute("open", "")  # folded
    expect(page.get_by_role("combobox", name="Restore version", exact=True)).to_have_value(str(before - 1))
    page.get_by_role("button", name=f"Restore version {before - 1} as a new version").click()
    expect(page.get_by_text(f"Restore version {before - 1} of beta/secret?")).to_be_visible()
    shot(page, "page-versions-confirm")
    page.get_by_role("button", name="Cancel", exact=True).click()
    expect(page.get_by_text(f"Restore version {before - 1} of beta/secret?")).to_have_count(0)
    page.get_by_role("button", name="Delete beta/secret").click()
    expect(page.get_by_text("Delete beta/secret?")).to_be_visible()
    page.get_by_role("button", name="Cancel", exact=True).click()
    idle(page)
    assert store.get_document("beta", "secret").version == before  # nothing was written


def test_console_on_a_missing_database_shows_only_the_command(stack, browser):
    from playwright.sync_api import expect

    missing = stack["tmp"] / "not-yet.db"
    port = free_port()
    procs = Procs(stack["tmp"])
    try:
        procs.start([str(Path(sys.executable).parent / "mcpgw"), "console", "--db", f"sqlite:///{missing}",
                     "--port", str(port)], name="console-missing")
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", timeout=60, status=200)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        pg = context.new_page()
        pg.goto(f"http://127.0.0.1:{port}")
        expect(pg.get_by_text(f"mcpgw db upgrade --db sqlite:///{missing}")).to_be_visible(timeout=TIMEOUT)
        idle(pg)
        expect(pg.get_by_test_id("stSidebarNav")).to_have_count(0)  # no list of page files
        expect(pg.get_by_text("versions", exact=True)).to_have_count(0)
        shot(pg, "page-database-missing")
        context.close()
        assert not missing.exists()
    finally:
        procs.stop()
