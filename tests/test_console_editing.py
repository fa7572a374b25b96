"""The editor's Streamlit-free helpers for large documents: which form a save belongs to, bulk edits."""

from __future__ import annotations

import pytest

from console import editing
from mcpgw_sdk.errors import ConfigError


def doc(n: int = 4, allowed: list[str] | None = None) -> dict:
    server = {"name": "s"} if allowed is None else {"name": "s", "allowedTools": allowed}
    return {"name": "d", "tenant": "acme", "servers": [server],
            "tools": [{"name": f"t{i}", "method": "GET", "endpoint": "http://x"} for i in range(n)]}


def test_a_save_must_come_from_the_form_of_the_loaded_document_and_version():
    form = editing.form_key("acme/d", 3)
    assert form == "acme/d@3" and editing.form_key(None, None) == "new@0"
    assert editing.foreign_errors(doc(), ident="acme/d", form=form, base=3) == []
    stale = editing.foreign_errors(doc(), ident="acme/d", form="acme/other@1", base=3)
    assert "made for acme/other@1" in stale[0].reason
    renamed = editing.foreign_errors({**doc(), "name": "x"}, ident="acme/d", form=form, base=3)
    assert renamed[0].path == "name" and "holds acme/d" in renamed[0].reason


def test_bulk_header_timeout_and_allow_deny():
    content = doc(allowed=["t0", "t1", "t2"])
    tools = editing.server_tools(content, "s")
    assert tools == [0, 1, 2]
    assert editing.set_header(content, tools, "Authorization", "Bearer x") == 3
    assert editing.set_header(content, tools, "Authorization", "Bearer x") == 0
    assert "headers" not in content["tools"][3]
    assert editing.set_timeout(content, tools, 12) == 3 and content["tools"][0]["timeout"] == 12
    with pytest.raises(ConfigError):
        editing.set_timeout(content, tools, 0)
    assert editing.allow_tools(content, "s", ["t3"], allowed=True) == 1
    assert editing.allow_tools(content, "s", ["t0", "t9"], allowed=False) == 1
    assert content["servers"][0]["allowedTools"] == ["t1", "t2", "t3"]
    everything = doc()  # no allowedTools: all tools; denying one lists the others
    assert editing.allow_tools(everything, "s", ["t1"], allowed=False) == 1
    assert everything["servers"][0]["allowedTools"] == ["t0", "t2", "t3"]
    assert editing.set_header(content, tools, "Authorization", "") == 3 and "headers" not in content["tools"][0]


def test_search_and_problems_by_tool():
    content = doc(12)
    assert editing.matching_tools(content, "T1") == [1, 10, 11]
    errors = [editing.FieldError("tools[10].endpoint", "bad"), editing.FieldError("tools[10].args[0].type", "x"),
              editing.FieldError("servers[0]", "y")]
    assert {i: len(e) for i, e in editing.tool_errors(errors).items()} == {10: 2}
