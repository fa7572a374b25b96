"""Templates: every context name, Unla-style rendering, the env allow-list (and what the gateway and
``mcpgw check`` make of a name it leaves out), errors and caching."""

from __future__ import annotations

import sys
from datetime import datetime, timezone

import pytest
from click.testing import CliRunner

from gateway_server.backends import CallContext
from gateway_server.snapshot import build_snapshot
from mcpgw_sdk import TemplateError
from mcpgw_sdk import records as r
from mcpgw_sdk.cli import cli
from mcpgw_sdk.templates import Headers, Template, check_template, compile_template, render, request_context


def context() -> dict:
    return {
        "args": {"email": "ann@example.com", "tags": ["a", "b"], "public": True, "hidden": False,
                 "settings": {"theme": "dark", "n": 1}, "nothing": None, "count": 3},
        "config": {"Authorization": "Bearer cfg"},
        "request": request_context({"Authorization": "Bearer client", "X-Api-Key": "k1"},
                                   {"page": "2"}, {"session": "s1"}),
        "response": {"status": 201, "headers": {"Content-Type": "application/json"},
                     "data": {"user": {"id": 7, "roles": ["admin"]}}, "body": '{"user": {"id": 7}}'},
    }


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ args.email }}", "ann@example.com"),
    ("{{ config.Authorization }}", "Bearer cfg"),
    ("{{ request.headers.authorization }}", "Bearer client"),
    ("{{ request.headers.Authorization }}", "Bearer client"),
    ('{{ request.headers["x-api-key"] }}', "k1"),
    ('{{ request.headers["X-API-KEY"] }}', "k1"),
    ("{{ request.query.page }}", "2"),
    ("{{ request.cookies.session }}", "s1"),
    ("{{ response.status }}", "201"),
    ('{{ response.headers["content-type"] }}', "application/json"),
    ("{{ response.data.user.id }}", "7"),
    ("{{ response.data.user.roles[0] }}", "admin"),
    ("{{ response.body }}", '{"user": {"id": 7}}'),
])
def test_every_context_name(text, expected):
    assert render(text, context()) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('{"public": {{ args.public }}, "hidden": {{ args.hidden }}}', '{"public": true, "hidden": false}'),
    ('{"tags": {{ args.tags }}}', '{"tags": ["a","b"]}'),
    ("{{ args.settings }}", '{"theme":"dark","n":1}'),
    ("[{{ args.nothing }}]", "[]"),
    ("[{{ args.missing }}][{{ args.missing.deeper.still }}]", "[][]"),
    ("{{ args.count }}", "3"),
    ("{{ args.settings | tojson }}", '{"theme":"dark","n":1}'),
    ('{{ "<a & b>" | tojson }}', '"<a & b>"'),  # no HTML escaping
    ("{{ args.missing | tojson }}", "null"),
    ('{{ response.data.user.name | default("anon") }}', "anon"),
    ("{% if args.public %}yes{% else %}no{% endif %}", "yes"),
    ("{% if args.missing %}yes{% else %}no{% endif %}", "no"),
    ("line\n", "line\n"),  # the last newline is kept, as Go keeps it
])
def test_unla_style_rendering(text, expected):
    assert render(text, context()) == expected


def test_env_allow_list(monkeypatch):
    monkeypatch.setenv("MCPGW_TEMPLATE_ENV", "API_TOKEN, OTHER")
    monkeypatch.setenv("API_TOKEN", "secret")
    monkeypatch.setenv("HOME_SECRET", "leak")
    assert render('Bearer {{ env("API_TOKEN") }}', {}) == "Bearer secret"
    assert render('[{{ env("OTHER") }}]', {}) == "[]"  # allowed but unset
    with pytest.raises(TemplateError) as info:
        render('{{ env("HOME_SECRET") }}', {})
    assert str(info.value) == "env('HOME_SECRET') is not allowed; add it to MCPGW_TEMPLATE_ENV"
    monkeypatch.delenv("MCPGW_TEMPLATE_ENV")
    with pytest.raises(TemplateError, match="not allowed"):
        render('{{ env("API_TOKEN") }}', {})


def test_syntax_error_reason_has_the_line():
    assert check_template("{{ args.x }}") is None
    assert check_template("ok\n{{ args.x }") == "unexpected '}' (line 2)"
    assert "line 3" in check_template("a\nb\n{% if %}")
    with pytest.raises(TemplateError) as info:
        compile_template("{{ a", field="tools[0].endpoint")
    assert str(info.value).startswith("tools[0].endpoint: ")
    assert "(line 1)" in str(info.value)


def test_render_errors_are_template_errors():
    with pytest.raises(TemplateError, match="'undefined_function' is undefined"):
        render("{{ undefined_function() }}", {})
    with pytest.raises(TemplateError, match="^tools\\[1\\].requestBody: ZeroDivisionError"):
        compile_template("{{ 1 / 0 }}", field="tools[1].requestBody").render({})


def test_sandbox_blocks_internals():
    assert render("{{ args.__class__ }}{{ ''.__class__.__mro__ }}", {"args": {}}) == ""
    with pytest.raises(TemplateError):
        render("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})


def test_compiled_templates_are_cached():
    text = "cached {{ args.x }}"
    first = compile_template(text)
    assert compile_template(text) is first
    assert isinstance(first, Template)
    named = compile_template(text, field="f")
    assert named.field == "f" and named.render({"args": {"x": 1}}) == "cached 1"


def test_plain_dict_headers_are_case_insensitive_too():
    ctx = {"request": {"headers": {"X-Api-Key": "k"}, "query": {}, "cookies": {}}}
    assert render("{{ request.headers['x-api-key'] }}", ctx) == "k"
    headers = Headers({"Content-Type": "text/plain"})
    assert headers["content-type"] == headers.get("CONTENT-TYPE") == "text/plain"
    assert "Content-type" in headers and dict(headers) == {"content-type": "text/plain"}


def _env_document() -> dict:
    """A REST router and an upstream whose env reads a variable MCPGW_TEMPLATE_ENV does not allow."""
    return {"name": "mix", "tenant": "default",
            "routers": [{"prefix": "/default/rest", "server": "rest"}, {"prefix": "/default/up", "server": "up"}],
            "servers": [{"name": "rest", "allowedTools": ["ping"]}],
            "tools": [{"name": "ping", "description": "ping", "method": "GET", "endpoint": "http://127.0.0.1:9/x"}],
            "mcpServers": [{"name": "up", "type": "stdio", "command": sys.executable, "policy": "onDemand",
                            "env": {"TOKEN": '{{ env("QA_NOT_ALLOWED") }}'}}]}


def test_an_upstream_with_a_forbidden_env_name_fails_alone(monkeypatch):
    monkeypatch.delenv("MCPGW_TEMPLATE_ENV", raising=False)
    doc = r.Document(tenant="default", name="mix", content=_env_document(), version=1,
                     updated_at=datetime.now(timezone.utc), updated_by=None, deleted=False)
    snap = build_snapshot(r.ConfigSet(revision=1, documents=(doc,), keys=(),
                                      tenants=(r.Tenant(id=1, name="default", prefix="/", description=""),)))
    try:
        assert snap.errors == {}
        assert {"/default/rest", "/default/up"} <= set(snap.routes)
        upstream = next(b for b in snap.backends.values() if getattr(b, "name", "") == "up")
        status = upstream.status()
        assert status["state"] == "failed"
        assert "env('QA_NOT_ALLOWED') is not allowed" in status["last_error"]
        result = upstream.call_tool("anything", {}, CallContext())
        assert result["isError"] and "QA_NOT_ALLOWED" in result["content"][0]["text"]
    finally:
        for backend in snap.backends.values():
            backend.close()


def test_check_warns_about_env_names_not_allowed(sqlite_store, sqlite_url, monkeypatch):
    monkeypatch.delenv("MCPGW_TEMPLATE_ENV", raising=False)
    sqlite_store.save_document(_env_document())
    result = CliRunner().invoke(cli, ["check", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert ("Warning: default/mix: mcpServers[0].env.TOKEN: env('QA_NOT_ALLOWED') is not allowed"
            in result.stderr)
    assert "All 1 document(s) are valid." in result.stdout
    monkeypatch.setenv("MCPGW_TEMPLATE_ENV", "QA_NOT_ALLOWED")
    assert "Warning" not in CliRunner().invoke(cli, ["check", "--db", sqlite_url]).stderr
