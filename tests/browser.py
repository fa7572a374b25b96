"""The console in a real browser, shared by the browser tests: Debian's Chromium driven by Playwright.

:func:`browser_missing` says what a machine lacks to run them; :func:`launch` and :func:`open_page` give a browser
and a page (screenshotted when it closes); the rest are the steps of a Streamlit page a user takes.
Playwright is imported where it is used, so that this module imports without it. Screenshots go to
``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "test-artifacts" / "screenshots"
PW = {"admin": "admin-pass-1", "bob": "bob-pass-12"}
TIMEOUT = 30_000  # ms, for Playwright's expectations

IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app !== null && app.getAttribute("data-test-script-state") === "notRunning"
        && document.querySelector('[data-stale="true"]') === null;
}"""


def browser_missing() -> str:
    """What the browser tests need and this machine lacks (the playwright package, Chromium), or ``""``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package (pip install playwright; never `playwright install`)"
    return "" if Path(CHROMIUM).exists() else f"{CHROMIUM} (scripts/system-deps.sh installs it)"


@contextlib.contextmanager
def launch() -> Iterator:
    """Headless Chromium, with Playwright's expectations waiting up to :data:`TIMEOUT`."""
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@contextlib.contextmanager
def open_page(browser, request, *, height: int) -> Iterator:
    """A page of its own context, 1400 × ``height``; shot as ``last-<test>`` when the test ends."""
    context = browser.new_context(viewport={"width": 1400, "height": height})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    yield page
    shot(page, f"last-{request.node.name}", settle=False)  # the state the test ended in, to look at when it fails
    context.close()


def shot(page, name: str, *, settle: bool = True) -> None:
    """Screenshot the whole page as ``<name>.png``, once it is idle unless ``settle`` is false."""
    if settle:
        idle(page)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def idle(page) -> None:
    """Wait until Streamlit has finished running the script and no stale element is left."""
    page.wait_for_function(IDLE, timeout=TIMEOUT)


def login(page, stack, name: str) -> None:
    """Sign in to the console at ``stack["console"]`` as ``name`` (a user of :data:`PW`)."""
    from playwright.sync_api import expect

    page.goto(stack["console"])
    page.get_by_label("User name").fill(name)
    page.get_by_label("Password", exact=True).fill(PW[name])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()
    idle(page)


def goto(page, title: str) -> None:
    """Open the console page ``title`` from the sidebar."""
    from playwright.sync_api import expect

    page.get_by_test_id("stSidebarNav").get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title, level=1)).to_be_visible()
    idle(page)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label`` (reopening it if a rerun closed the list)."""
    idle(page)
    box = page.get_by_role("combobox", name=label, exact=True)
    choice = page.get_by_role("option", name=option, exact=True)
    for _ in range(3):
        box.click()
        try:
            choice.wait_for(timeout=5000)
        except Exception:  # noqa: BLE001 - a rerun replaced the list; open it again
            continue
        choice.click()
        break
    else:
        raise AssertionError(f"no option {option!r} in {label!r}")
    idle(page)


def fill(page, label: str, value: str) -> None:
    """Type into a text input and commit it (Streamlit reads it on Enter)."""
    field = page.get_by_role("textbox", name=label, exact=True)
    field.fill(value)
    field.press("Enter")
    idle(page)
