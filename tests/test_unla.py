"""Unla's Go templates: each translation row, refusals, the document round trip and ``export --format unla``."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from mcpgw_sdk import TemplateError
from mcpgw_sdk import documents as d
from mcpgw_sdk.cli import cli
from mcpgw_sdk.templates import render, request_context
from mcpgw_sdk.unla import from_unla, is_unla, to_unla, translate
from tests.fixtures_store import make_document

DATA = Path(__file__).parent / "data"


def unla_doc() -> dict:
    return d.parse_text((DATA / "unla-mock-user-svc.yaml").read_text(), source="unla-mock-user-svc.yaml")[0]


@pytest.mark.parametrize(("go", "jinja"), [
    ("{{.Args.email}}", "{{ args.email }}"),
    ("{{.Config.Authorization}}", "{{ config.Authorization }}"),
    ("{{.Request.Headers.Authorization}}", "{{ request.headers.authorization }}"),
    ('{{ index .Request.Headers "X-Api-Key" }}', '{{ request.headers["x-api-key"] }}'),
    ("{{.Response.Data.user.id}}", "{{ response.data.user.id }}"),
    ("{{.Response.Body}}", "{{ response.body }}"),
    ("{{ toJSON .Args.settings }}", "{{ args.settings | tojson }}"),
    ("{{ .Args.settings | toJSON }}", "{{ args.settings | tojson }}"),
    ('{{ env "AUTH_TOKEN" }}', '{{ env("AUTH_TOKEN") }}'),
    ('{{ safeGet "a.b.0" .Response.Data }}', "{{ response.data.a.b[0] }}"),
    ('{{ safeGetOr "a.b" .Response.Data "x" }}', '{{ response.data.a.b | default("x") }}'),
    ("{{if .Args.x}}A{{else}}B{{end}}", "{% if args.x %}A{% else %}B{% endif %}"),
    ('{{if eq .Args.x "a"}}A{{else if .Args.y}}B{{end}}', '{% if args.x == "a" %}A{% elif args.y %}B{% endif %}'),
    ("a\n  {{- if .Args.x}}\n  x\n  {{- end}}", "a\n  {%- if args.x %}\n  x\n  {%- endif %}"),
    ("{{if and .Args.a (not .Args.b)}}y{{end}}", "{% if args.a and (not args.b) %}y{% endif %}"),
    ('{{ index .Args "user-id" }}', '{{ args["user-id"] }}'),
    ("{{ len .Args.tags }}", "{{ args.tags | length }}"),
    ("no template here {x}", "no template here {x}"),
    ("keep {% this %} {{ .Args.a }}", "{% raw %}keep {% this %} {% endraw %}{{ args.a }}"),
    ("only {# text", "{% raw %}only {# text{% endraw %}"),
])
def test_translation_rows(go, jinja):
    assert translate(go) == jinja


RENDER_CTX = {
    "args": {"email": "ann@example.com", "isPublic": True, "tags": ["dev"], "theme": "", "x": 0,
             "settings": {"a": 1}},
    "config": {"Authorization": "Bearer c"},
    "request": request_context({"Authorization": "Bearer r", "X-Api-Key": "k"}, {}, {}),
    "response": {"status": 200, "headers": {}, "data": {"user": {"id": 1}, "a": {"b": ["first"]}}, "body": "raw"},
}


@pytest.mark.parametrize(("go", "expected"), [
    ('{"isPublic": {{.Args.isPublic}}, "tags": {{.Args.tags}}}', '{"isPublic": true, "tags": ["dev"]}'),
    ("{\n  {{- if .Args.theme}}\n  t\n  {{- else}}\n  none\n  {{- end}}\n}", "{\n  none\n}"),
    ("{{- if .Args.x -}}  yes  {{- else -}}  no  {{- end -}}", "no"),
    ('{{ index .Request.Headers "X-Api-Key" }}/{{.Request.Headers.Authorization}}', "k/Bearer r"),
    ('{{ safeGet "a.b.0" .Response.Data }}|{{ safeGetOr "a.c" .Response.Data "dflt" }}', "first|dflt"),
    ("{{ toJSON .Args.settings }}", '{"a":1}'),
])
def test_translated_templates_render_like_go(go, expected):
    assert render(translate(go), RENDER_CTX) == expected


@pytest.mark.parametrize(("go", "reason"), [
    # range, with, variables, $, upper and fromJSON translate now (tests/test_unla_fidelity.py)
    ('{{define "x"}}a{{end}}', "'define' does not translate"),
    ("{{range .Args.items}}{{break}}{{end}}", "'break' does not translate"),
    ("{{ $x = .Args.a }}", "variable $x is not declared"),
    ("{{ $ }}", "'$' alone (the whole context) does not translate"),
    ("{{ quote .Args.a }}", "function 'quote' does not translate; write the Jinja that does the same instead"),
    ("{{ sha256sum .Response.Data.rows }}", "function 'sha256sum' has no equivalent"),
    ("{{ .Request.Body }}", ".Request needs one of"),
    ("{{ .Secret }}", "field .Secret is not known"),
    ("{{if .Args.a}}open", "'if' without 'end'"),
    ("{{end}}", "'end' without 'if'"),
    ("{{ .Args.a", "unclosed action"),
])
def test_refusals_name_field_text_and_reason(go, reason):
    with pytest.raises(TemplateError) as info:
        translate(go, where="default/users: tools[0].requestBody")
    message = str(info.value)
    assert message.startswith(f"default/users: tools[0].requestBody: cannot translate {go!r}: line 1: ")
    assert reason in message


def test_jinja_lookalike_text_stays_text():
    text = 'a {% endraw %} {# b\n "q" {{ .Args.x }}'
    assert render(translate(text), {"args": {"x": 1}}) == 'a {% endraw %} {# b\n "q" 1'


def test_refusal_gives_the_line():
    with pytest.raises(TemplateError, match="line 3: {{ break }}: 'break' does not translate"):
        translate('{\n  "a": 1,\n  {{range .Args.x}}{{break}}{{end}}\n}')


def test_from_unla_refuses_with_every_field():
    doc = unla_doc()
    doc["tools"][0]["requestBody"] = "{{range .Args.x}}{{continue}}{{end}}"
    doc["servers"][0]["config"]["Cookie"] = "{{ sha256sum .Args.x }}"
    with pytest.raises(TemplateError) as info:
        from_unla(doc)
    assert len(info.value.errors) == 2
    assert info.value.errors[0].startswith("default/mock-user-svc: servers[0].config.Cookie: cannot translate")
    assert info.value.errors[1].startswith("default/mock-user-svc: tools[0].requestBody: cannot translate")


def test_is_unla():
    doc = unla_doc()
    assert is_unla(doc)
    ours = from_unla(doc)
    assert not is_unla(ours)
    assert is_unla({"name": "x", "servers": [{"name": "s", "config": {"K": '{{ env "K" }}'}}]})
    assert not is_unla({"name": "x", "servers": [{"name": "s", "config": {"K": '{{ env("K") }}'}}]})
    assert not is_unla({"name": "x"})


def test_round_trip_through_yaml():
    ours = from_unla(unla_doc())
    assert "createdAt" not in ours and "updatedAt" not in ours
    normalized = d.validate(ours)
    again = d.validate(d.parse_text(d.to_yaml(normalized), source="export.yaml")[0])
    assert again == normalized
    tools = {t["name"]: t for t in normalized["tools"]}
    assert tools["register_user"]["headers"]["X-Api-Key"] == '{{ request.headers["x-api-key"] }}'
    assert normalized["servers"][0]["config"] == {"Cookie": "123", "Authorization": 'Bearer {{ env("AUTH_TOKEN") }}'}
    assert normalized["mcpServers"][0]["env"] == {"AMAP_MAPS_API_KEY": '{{ env("AMAP_KEY") }}'}


def test_translated_document_renders_valid_json():
    import json

    tool = {t["name"]: t for t in from_unla(unla_doc())["tools"]}["update_user_preferences"]
    ctx = dict(RENDER_CTX, args={"email": "a@b", "isPublic": False, "theme": "dark", "tags": ["dev", "ops"],
                                 "settings": {"k": [1, 2]}})
    assert json.loads(render(tool["requestBody"], ctx)) == {
        "isPublic": False, "theme": "dark", "tags": ["dev", "ops"], "settings": {"k": [1, 2]}}
    ok = dict(RENDER_CTX, response={"data": {"status": "ok", "email": "a@b"}, "body": "x"})
    assert render(tool["responseBody"], ok) == "updated a@b"
    bad = dict(RENDER_CTX, response={"data": {"status": "no"}, "body": "boom"})
    assert render(tool["responseBody"], bad) == "failed: boom"


def test_to_unla_gives_equivalent_templates(monkeypatch):
    monkeypatch.setenv("MCPGW_TEMPLATE_ENV", "AUTH_TOKEN,AMAP_KEY")
    monkeypatch.setenv("AUTH_TOKEN", "tok")
    ours = d.validate(from_unla(unla_doc()))
    back = to_unla(ours)
    assert is_unla(back)
    tools = {t["name"]: t for t in back["tools"]}
    assert tools["register_user"]["headers"]["Authorization"] == "{{ .Request.Headers.Authorization }}"
    assert tools["register_user"]["headers"]["X-Api-Key"] == '{{ index .Request.Headers "X-Api-Key" }}'
    assert back["servers"][0]["config"]["Authorization"] == 'Bearer {{ env "AUTH_TOKEN" }}'
    # Equivalent: translating the exported Unla templates again renders exactly what ours render.
    reimported = d.validate(from_unla(back))
    contexts = [RENDER_CTX, dict(RENDER_CTX, args={**RENDER_CTX["args"], "theme": "dark"},
                                 response={"data": {"status": "ok", "email": "e"}, "body": "b"})]
    pairs = list(zip(d.iter_templates(ours), d.iter_templates(reimported), strict=True))
    assert len(pairs) > 10
    for (path, c1, k1), (_p, c2, k2) in pairs:
        for ctx in contexts:
            assert render(c1[k1], ctx) == render(c2[k2], ctx), path


@pytest.mark.parametrize(("jinja", "reason"), [
    ("{% for x in args.items %}{{ x }}{% endfor %}", "{% for %} has no Unla spelling"),
    ("{{ args.name | upper }}", "the filter 'upper' has no Unla spelling"),
    ("{{ args.a + 1 }}", "Add expressions have no Unla spelling"),
    ('{{ args.a | default("x") }}', "the filter 'default' has no Unla spelling"),
])
def test_to_unla_refuses_with_the_field(jinja, reason):
    doc = d.validate({"name": "n", "tools": [{"name": "t", "endpoint": "http://x", "requestBody": jinja}]})
    with pytest.raises(TemplateError) as info:
        to_unla(doc)
    assert str(info.value).startswith(f"default/n: tools[0].requestBody: cannot express {jinja!r}")
    assert reason in str(info.value)


def test_export_unla_skips_only_the_untranslatable_document(sqlite_store, sqlite_url):
    sqlite_store.save_document(make_document("good"))
    sqlite_store.save_document(make_document("bad", endpoint="http://h/{{ args.id | upper }}"))
    result = CliRunner().invoke(cli, ["export", "--format", "unla", "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert [doc["name"] for doc in yaml.safe_load_all(result.stdout)] == ["good"]
    assert "Warning: skipped default/bad: tools[0].endpoint:" in result.stderr
    assert "'upper' has no Unla spelling" in result.stderr
    alone = CliRunner().invoke(cli, ["export", "--format", "unla", "--name", "bad", "--db", sqlite_url])
    assert alone.exit_code == 1 and "nothing exported" in alone.stderr
