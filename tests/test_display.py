"""How tables show in notebooks and terminals, with a thousand tools as well as with three."""

from __future__ import annotations

import re

import pytest

from mcpgw_sdk import Workspace, open_store
from mcpgw_sdk.display import Table


@pytest.fixture
def thousand_tools(sqlite_url):
    """A workspace with 1,000 REST tools: 600 in default/big (server api), 400 in default/small (server aux)."""
    store = open_store(sqlite_url, check=False)
    store.upgrade()
    for name, server, count in (("big", "api", 600), ("small", "aux", 400)):
        tools = [{"name": f"{name}_tool_{i:04d}", "description": f"Tool number {i} " + "x" * 80, "method": "GET",
                  "endpoint": f"http://127.0.0.1:9/{name}/{i}"} for i in range(count)]
        store.save_document({"name": name, "tenant": "default", "routers": [{"prefix": f"/{name}", "server": server}],
                             "servers": [{"name": server, "allowedTools": [t["name"] for t in tools]}],
                             "tools": tools}, author="test")
    yield Workspace(store)
    store.close()


def test_a_thousand_tools_print_as_a_summary(thousand_tools):
    tools = thousand_tools.tools()
    assert len(tools) == 1000
    text = repr(tools)
    lines = text.splitlines()
    assert lines[0] == "Tools: 1000 rows"
    assert lines[1] == "per tenant/document: default/big 600, default/small 400"
    assert lines[2] == "per server: api 600, aux 400"
    assert lines[3] == "first 20:"
    assert "big_tool_0019" in text and "big_tool_0020" not in text
    assert lines[-1].startswith("… 980 more: .page(n)")
    assert len(lines) == 4 + 21 + 1  # header, counts, the column names and 20 rows, the hint
    assert max(len(line) for line in lines) < 400  # long descriptions are cut
    assert tools.counts()["server"] == {"api": 600, "aux": 400}


def test_a_thousand_tools_show_as_a_paged_html_table(thousand_tools):
    tools = thousand_tools.tools()
    html = tools._repr_html_()
    assert "Tools: 1000 rows" in html and "per server: api 600, aux 400" in html
    pages = re.findall(r"<details( open)?><summary>rows (\d+)–(\d+)</summary>", html)
    assert len(pages) == 20 and pages[0] == (" open", "1", "50") and pages[-1] == ("", "951", "1000")
    assert sum(1 for p in pages if p[0]) == 1  # only the first page is open
    assert html.count("<tr>") == 1000 + 20  # every row once, one header row per page
    page = tools.page(3)
    assert isinstance(page, Table) and len(page) == 50 and page[0].name == "big_tool_0100"
    assert page.title == "Tools 101–150 of 1000"
    assert len(tools.to_dataframe()) == 1000


def test_a_long_table_puts_at_most_html_max_rows_in_its_html():
    table = Table([{"n": i} for i in range(Table.HTML_MAX + 75)], columns=["n"])
    html = table._repr_html_()
    assert html.count("<tr>") == Table.HTML_MAX + Table.HTML_MAX // Table.PAGE
    assert "75 more rows: .page(n) or .to_dataframe()" in html


def test_a_short_table_shows_every_row_as_before():
    table = Table([{"a": 1, "b": "x"}, {"a": 2, "b": None}], columns=["a", "b"], group_by=["b"])
    assert repr(table) == "a  b\n1  x\n2"
    assert "<details" not in table._repr_html_()
