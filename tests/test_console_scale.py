"""The editor on a 1,500-tool document, in a real browser (Debian's Chromium driven by Playwright).

A real console and a real gateway share one SQLite database holding a 3-tool and a 1,500-tool document
whose tools call a recording backend in this process. The tests print how long opening, editing
and saving take (not gating), check that switching documents shows (and saves) only the second one,
that a bulk header edit reaches the backend on every tool through the official MCP client, and that a
failed save shows its problems where the user looks. Screenshots go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mcpgw_sdk import open_store
from tests.browser import IDLE, PW, TIMEOUT, browser_missing, choose, fill, goto, idle, login, open_page, shot
from tests.fixtures_gateway import run_gateway
from tests.fixtures_store import seed_console_users
from tests.helpers import Procs, RecordingBackend, free_port, wait_http

pytestmark = [pytest.mark.browser, pytest.mark.slow]

BIG = 1500


def small_doc(base: str) -> dict:
    return {"name": "small", "tenant": "acme", "routers": [{"prefix": "/acme/small", "server": "small"}],
            "servers": [{"name": "small", "description": "Small server",
                         "allowedTools": [f"small_{i}" for i in range(3)], "config": {}}],
            "tools": [{"name": f"small_{i}", "description": f"Small tool {i}", "method": "GET",
                       "endpoint": f"{base}/small/{i}"} for i in range(3)]}


def big_doc(base: str) -> dict:
    return {"name": "big", "tenant": "acme", "routers": [{"prefix": "/acme/big", "server": "big"}],
            "servers": [{"name": "big", "description": "Big server",
                         "allowedTools": [f"big_{i:04d}" for i in range(BIG)], "config": {}}],
            "tools": [{"name": f"big_{i:04d}", "description": f"Big tool {i}", "method": "GET",
                       "endpoint": f"{base}/big/{i}",
                       "args": [{"name": "q", "position": "query", "required": False, "type": "string"}]}
                      for i in range(BIG)]}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """A recording backend (in this process), a gateway and a console on one database."""
    missing = browser_missing()
    if missing:
        pytest.skip(f"browser tests need {missing}")
    with RecordingBackend() as backend:
        tmp = tmp_path_factory.mktemp("scale")
        db = f"sqlite:///{tmp / 'mcpgw.db'}"
        store = open_store(db, check=False)
        store.upgrade()
        seed_console_users(store, PW)
        store.save_document(small_doc(backend.url), author="admin")
        store.save_document(big_doc(backend.url), author="admin")
        procs = Procs(tmp)
        try:
            gateway = run_gateway(procs, db, reload_interval=0.5, revision=store.revision())
            port = free_port()
            procs.start([str(Path(sys.executable).parent / "mcpgw"), "console", "--db", db, "--port", str(port)],
                        name="console", env={"MCPGW_GATEWAY_URL": gateway.base})
            console = f"http://127.0.0.1:{port}"
            wait_http(f"{console}/_stcore/health", timeout=60, status=200)
            yield {"store": store, "console": console, "gateway": gateway, "base": backend.url, "seen": backend.seen}
        finally:
            procs.stop()
            store.close()


@pytest.fixture
def page(browser, request):
    with open_page(browser, request, height=1000) as pg:
        pg.runs = Runs(pg)
        yield pg


class Runs:
    """The script runs the console finished for a page, counted from its ``script_finished`` messages.

    A step is timed until the run it caused has finished and the browser shows its result, polled every
    animation frame: Playwright's ``expect`` polls every 500 ms once its first quarter second has passed,
    which added up to half a second to a step, and a quick run may end before ``idle`` sees it start.
    """

    def __init__(self, page):
        self.page, self.done = page, 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._frame))

    def _frame(self, payload) -> None:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        if isinstance(payload, bytes):
            msg = ForwardMsg.FromString(payload)
            if msg.HasField("script_finished") and msg.script_finished in (
                    ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_FRAGMENT_RUN_SUCCESSFULLY):
                self.done += 1

    def settle(self, since: int, timeout: float = TIMEOUT / 1000) -> None:
        """Wait until a run after the ``since``-th has finished, then until the page has rendered it."""
        deadline = time.monotonic() + timeout
        while self.done <= since:
            assert time.monotonic() < deadline, "no script run finished"
            self.page.wait_for_timeout(5)  # lets Playwright deliver the frames
        self.page.wait_for_function(IDLE, polling="raf", timeout=TIMEOUT)


class Clock:
    """Prints how long each step took (not gating: a budget to watch)."""

    def __init__(self, what: str):
        self.what = what

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        print(f"\n[timing] {self.what}: {self.seconds:.2f} s", flush=True)


def tool_box(page, name: str):
    """The expander of the tool the editor shows."""
    return page.get_by_test_id("stExpander").filter(has=page.get_by_text(f"Tool {name}", exact=True))


def call_tools(url: str, calls: list[str]) -> tuple[int, list]:
    """How many tools the official MCP client lists at ``url``, and the results of calling ``calls``."""
    from mcp import Client

    async def run():
        async with Client(url) as client:
            count, cursor = 0, None
            while True:  # the gateway pages tools/list
                listed = await client.list_tools(cursor=cursor)
                count, cursor = count + len(listed.tools), listed.next_cursor
                if not cursor:
                    break
            return count, [await client.call_tool(name, {"q": "x"}) for name in calls]

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        return pool.submit(asyncio.run, run()).result(timeout=60)


def open_big(page, stack) -> None:
    from playwright.sync_api import expect

    login(page, stack, "admin")
    goto(page, "Editor")
    with Clock(f"open the {BIG}-tool document"):
        since = page.runs.done
        choose(page, "Document", "acme/big")
        page.runs.settle(since)
        expect(tool_box(page, "big_0000")).to_be_visible()


# -- tests --------------------------------------------------------------------------------
def test_switching_documents_shows_and_saves_only_the_second(stack, page):
    from playwright.sync_api import expect

    store, base = stack["store"], stack["base"]
    small_before = store.get_document("acme", "small")
    expected = store.get_document("acme", "big").content  # as stored (with the format's empty lists)
    login(page, stack, "admin")
    goto(page, "Editor")
    choose(page, "Document", "acme/small")
    expect(tool_box(page, "small_0").get_by_role("textbox", name="Endpoint", exact=True)).to_have_value(
        f"{base}/small/0")
    page.get_by_text("Server small", exact=True).click()
    shot(page, "20-editor-small")

    with Clock(f"switch to the {BIG}-tool document"):
        since = page.runs.done
        choose(page, "Document", "acme/big")
        page.runs.settle(since)
        box = tool_box(page, "big_0000")
        expect(box.get_by_role("textbox", name="Endpoint", exact=True)).to_have_value(f"{base}/big/0")
    expect(box.get_by_role("textbox", name="Description", exact=True)).to_have_value("Big tool 0")
    server = page.get_by_test_id("stExpander").filter(has=page.get_by_text("Server big", exact=True))
    if not server.get_by_role("textbox", name="Description", exact=True).is_visible():
        page.get_by_text("Server big", exact=True).click()
    expect(server.get_by_role("textbox", name="Description", exact=True)).to_have_value("Big server")
    expect(server.get_by_role("textbox", name="Allowed tools", exact=False)).to_have_value(
        ", ".join(f"big_{i:04d}" for i in range(BIG)))
    expect(page.get_by_text("Small tool 0")).to_have_count(0)
    shot(page, "21-editor-big-after-switch")

    with Clock("find one tool by name"):
        since = page.runs.done
        fill(page, "Search tools by name", "big_0777")
        page.runs.settle(since)
        box = tool_box(page, "big_0777")
        expect(box.get_by_role("textbox", name="Endpoint", exact=True)).to_have_value(f"{base}/big/777")
    field = box.get_by_role("textbox", name="Description", exact=True)
    field.fill("Edited in the browser")
    with Clock("edit one field of one tool"):
        since = page.runs.done
        field.press("Enter")
        page.runs.settle(since)
    with Clock("save"):
        since = page.runs.done
        page.get_by_role("button", name="Save", exact=True).click()
        page.runs.settle(since)
        expect(page.get_by_text("Saved acme/big as version 2.")).to_be_visible()
    shot(page, "22-editor-big-saved")

    big = store.get_document("acme", "big").content
    expected["tools"][777]["description"] = "Edited in the browser"
    assert big == expected
    small = store.get_document("acme", "small")
    assert (small.version, small.content) == (small_before.version, small_before.content)


def test_bulk_header_timeout_and_deny_reach_the_gateway(stack, page):
    from playwright.sync_api import expect

    store, gateway, seen = stack["store"], stack["gateway"], stack["seen"]
    open_big(page, stack)
    page.get_by_text("Server big", exact=True).click()
    page.get_by_role("textbox", name="Header name").fill("Authorization")  # a form: sent by its buttons
    page.get_by_role("textbox", name="Header value (template; empty removes it)").fill("Bearer bulk-secret")
    with Clock(f"set a header on {BIG} tools"):
        since = page.runs.done
        page.get_by_role("button", name="Set header on the server's tools").click()
        page.runs.settle(since)
        expect(page.get_by_text(f"Header Authorization set on {BIG} of {BIG} tool(s) of big.")).to_be_visible()
    page.get_by_role("textbox", name="Timeout (s)").fill("12")
    page.get_by_role("button", name="Set timeout on the server's tools").click()
    expect(page.get_by_text(f"Timeout set on {BIG} of {BIG} tool(s) of big.")).to_be_visible()
    page.get_by_role("textbox", name="Tool filter").fill("big_00")
    page.get_by_role("button", name="Deny matching tools").click()
    expect(page.get_by_text("Denied 100 tool(s) on big.")).to_be_visible()
    shot(page, "23-editor-bulk-edits")
    with Clock("save the bulk edits"):
        since = page.runs.done
        page.get_by_role("button", name="Save", exact=True).click()
        page.runs.settle(since)
        expect(page.get_by_text("Saved acme/big as version")).to_be_visible()

    content = store.get_document("acme", "big").content
    assert all(t["headers"] == {"Authorization": "Bearer bulk-secret"} and t["timeout"] == 12
               for t in content["tools"])
    assert content["servers"][0]["allowedTools"] == [f"big_{i:04d}" for i in range(100, BIG)]
    gateway.wait_revision(store.revision(), timeout=30)
    seen.clear()
    listed, results = call_tools(gateway.mcp_url("/acme/big"), ["big_0100", "big_0777", "big_1499"])
    assert listed == BIG - 100
    assert not any(r.is_error for r in results), results
    assert [(s["path"], s["headers"].get("authorization")) for s in seen] == [
        (f"/big/{i}", "Bearer bulk-secret") for i in (100, 777, 1499)]


def test_failed_save_shows_problems_in_view_and_validate_never_says_not_saved(stack, page):
    from playwright.sync_api import expect

    store = stack["store"]
    version = store.get_document("acme", "big").version
    open_big(page, stack)
    fill(page, "Search tools by name", "big_1234")
    endpoint = tool_box(page, "big_1234").get_by_role("textbox", name="Endpoint", exact=True)
    endpoint.fill("{{ config.base }}/big/{{ args.q ")
    endpoint.press("Enter")
    idle(page)
    fill(page, "Search tools by name", "")
    page.get_by_role("button", name="Save", exact=True).click()
    summary = page.get_by_text("Not saved: 1 problem(s)")
    expect(summary).to_be_in_viewport()
    # The editor jumps to the tool with the problem and shows it at the field.
    expect(tool_box(page, "big_1234").get_by_text("template does not parse").first).to_be_visible()
    shot(page, "24-editor-failed-save", settle=False)
    assert store.get_document("acme", "big").version == version

    # Validate lists the problem without claiming a save; YAML mode drops the form's stale errors.
    page.get_by_role("button", name="Validate", exact=True).click()
    expect(page.get_by_text("Not valid: 1 problem(s)")).to_be_in_viewport()
    expect(page.get_by_text("Not saved")).to_have_count(0)
    with Clock(f"switch the {BIG}-tool document to YAML mode"):
        since = page.runs.done
        page.get_by_text("YAML", exact=True).click()
        page.runs.settle(since)
        expect(page.get_by_role("textbox", name="YAML", exact=True)).to_be_visible()
    expect(page.get_by_text("template does not parse")).to_have_count(0)
    with Clock("validate in YAML mode"):
        since = page.runs.done
        page.get_by_role("button", name="Validate", exact=True).click()
        page.runs.settle(since)
        expect(page.get_by_text("Not valid: 1 problem(s)")).to_be_visible()
    expect(page.get_by_text("Not saved")).to_have_count(0)
    shot(page, "25-editor-yaml-validate")
    assert store.get_document("acme", "big").version == version
