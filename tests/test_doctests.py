"""The examples in the modules' docstrings run and print what they show.

Every module of the three packages with a ``>>>`` line is imported and its doctests run. Entry points
(``__main__``, ``wsgi``) are left out: importing them patches gevent or builds an app. So are the
console's Streamlit scripts (``console/app.py``, ``console/pages/``), which draw a page when imported.
"""

from __future__ import annotations

import doctest
import importlib
import io

import pytest

from tests.helpers import ROOT

PACKAGES = ("mcpgw_sdk", "gateway_server", "console")
ENTRY_POINTS = {"__main__.py", "wsgi.py"}


def _modules() -> list[str]:
    """Dotted names of the modules whose source holds a doctest, found without importing anything."""
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if path.name in ENTRY_POINTS or relative.parts[:2] in (("console", "pages"), ("console", "app.py")):
                continue
            if ">>> " in path.read_text(encoding="utf-8"):
                parts = relative.with_suffix("").parts
                found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = _modules()


def test_the_packages_have_doctests():
    assert {"mcpgw_sdk.builders", "gateway_server.mcp.modern", "console.editing"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    module = importlib.import_module(name)
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()

