"""Unla documents run as Unla runs them.

Documents written with the constructs of Unla's template guide (``range`` over a list with ``$i, $x :=``
and ``.`` inside, variables, ``fromJSON``, ``add``, ``index``, ``with``, ``printf``) are imported with
``import_document(format="unla")`` — what the CLI, the API and the console call — and served by a real
gateway subprocess in front of a recording WSGI backend: the backend must receive exactly the bytes Unla
would send. ``form-data`` arguments arrive as ``multipart/form-data``, read back with the standard
library's email parser. Then the refusals at import: a construct that does not translate (line, construct,
the Jinja to write), an ``env()`` name the gateway will not allow, and a Go-template document imported as
ours (CLI subprocess, API process, SDK).
"""

from __future__ import annotations

import email
import email.policy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mcpgw_sdk import ConfigError, TemplateError, Workspace
from mcpgw_sdk.client import McpClient
from mcpgw_sdk.opening import open_store
from mcpgw_sdk.templates import render
from mcpgw_sdk.unla import import_document, translate
from tests.fixtures_gateway import run_gateway, seed
from tests.helpers import Procs, RecordingBackend

PREFIX = "/default/orders"
MCPGW = str(Path(sys.executable).with_name("mcpgw"))

# Unla's spelling, as its template guide writes it: Unla hands array arguments to templates as JSON
# text, so a range goes through fromJSON (which, here, also takes the list as it is).
ORDER_BODY = """\
{{- $items := fromJSON .Args.items -}}
{"customer": "{{ index .Args.meta "customer-id" }}",{{ with .Args.note }} "note": {{ printf "%q" . }},{{ end }} \
"count": {{ len $items }}, "lines": [
{{- range $i, $x := $items }}{{ if $i }},{{ end }}
  {"n": {{ add $i 1 }}, "sku": "{{ $x.sku }}", "qty": {{ .qty }}, "label": "{{ printf "%s x%d" .sku (int .qty) }}"}
{{- end }}], "first": "{{ (index $items 0).sku }}"}"""

ORDER_RESPONSE = """\
{{- $lines := fromJSON .Response.Data.lines -}}
{{ len $lines }} line(s): {{ range $i, $l := $lines }}{{ add $i 1 }}. {{ $l.sku }}\
{{ if lt (add $i 1) (len $lines) }}; {{ end }}{{ end }} for {{ $.Args.meta.name }}"""


def unla_orders(base: str) -> dict:
    """An Unla document as its users keep it (Go templates, Unla's timestamps)."""
    return {
        "name": "orders", "tenant": "default", "createdAt": "2025-05-01T10:00:00Z",
        "routers": [{"server": "orders", "prefix": PREFIX}],
        "servers": [{"name": "orders", "config": {"base": base}}],
        "tools": [
            {"name": "create_order", "method": "POST", "endpoint": "{{.Config.base}}/orders",
             "headers": {"Content-Type": "application/json"},
             "args": [{"name": "items", "position": "body", "type": "array", "required": True,
                       "items": {"type": "object"}},
                      {"name": "meta", "position": "body", "type": "object", "required": True},
                      {"name": "note", "position": "body", "type": "string"}],
             "requestBody": ORDER_BODY, "responseBody": ORDER_RESPONSE},
            {"name": "upload", "method": "POST", "endpoint": "{{.Config.base}}/upload",
             "headers": {"Content-Type": "application/json"},  # Unla replaces it: form-data is multipart
             "args": [{"name": "title", "position": "form-data", "type": "string", "required": True},
                      {"name": "pages", "position": "form-data", "type": "integer"}]},
        ],
    }


ITEMS = [{"sku": "A-1", "qty": 2}, {"sku": "B-2", "qty": 1}]
META = {"customer-id": "c42", "name": "Ann"}
# What Unla's Go templates produce for these arguments, byte for byte.
EXPECTED_ORDER = ('{"customer": "c42", "note": "say \\"hi\\"", "count": 2, "lines": [\n'
                  '  {"n": 1, "sku": "A-1", "qty": 2, "label": "A-1 x2"},\n'
                  '  {"n": 2, "sku": "B-2", "qty": 1, "label": "B-2 x1"}], "first": "A-1"}')


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A gateway subprocess serving the imported Unla document over a recording backend; yields (gateway, seen)."""
    answer = {"lines": [{"sku": "A-1"}, {"sku": "B-2"}, {"sku": "C-3"}]}
    with RecordingBackend(answer) as backend, Procs(tmp_path_factory.mktemp("unla-fidelity")) as procs:
        url = f"sqlite:///{procs.log_dir / 'gw.db'}"
        document = import_document(unla_orders(backend.url), format="unla")
        yield run_gateway(procs, url, revision=seed(url, document)), backend.seen


def call(gateway, tool: str, arguments: dict) -> dict:
    with McpClient(gateway.mcp_url(PREFIX)) as client:
        result = client.call_tool(tool, arguments)
    assert not result.get("isError"), result
    return result


def test_range_variables_fromjson_add_index_send_what_unla_sends(served):
    gateway, seen = served
    seen.clear()
    result = call(gateway, "create_order", {"items": ITEMS, "meta": META, "note": 'say "hi"'})
    assert len(seen) == 1
    assert seen[0]["method"] == "POST" and seen[0]["path"] == "/orders"
    assert seen[0]["content_type"] == "application/json"
    assert seen[0]["body"].decode() == EXPECTED_ORDER
    assert json.loads(EXPECTED_ORDER)["lines"][1] == {"n": 2, "sku": "B-2", "qty": 1, "label": "B-2 x1"}
    # responseBody: a range over the response's list, $ (the root) inside it, add/lt/len for the separators
    assert result["content"][0]["text"] == "3 line(s): 1. A-1; 2. B-2; 3. C-3 for Ann"


def test_an_array_given_as_json_text_ranges_the_same():
    """Unla's fromJSON reads JSON text; an argument of type string holding JSON works as in Unla."""
    doc = import_document(unla_orders("http://127.0.0.1:1"), format="unla")
    body = doc["tools"][0]["requestBody"]
    text = render(body, {"args": {"items": json.dumps(ITEMS), "meta": META, "note": 'say "hi"'}})
    assert text == EXPECTED_ORDER
    without_note = render(body, {"args": {"items": ITEMS[:1], "meta": META}})
    assert without_note.startswith('{"customer": "c42", "count": 1, "lines": [\n  {"n": 1,')


def test_form_data_is_multipart_as_in_unla(served):
    gateway, seen = served
    seen.clear()
    call(gateway, "upload", {"title": "Q3 report", "pages": 12})
    received = seen[0]
    assert received["content_type"].startswith("multipart/form-data; boundary=")
    message = email.message_from_bytes(
        f"Content-Type: {received['content_type']}\r\n\r\n".encode() + received["body"], policy=email.policy.HTTP)
    assert message.is_multipart()
    parts = {part.get_param("name", header="content-disposition"): part.get_content()
             for part in message.iter_parts()}
    assert parts == {"title": "Q3 report", "pages": "12"}


def test_the_translation_marks_form_data_tools_multipart():
    doc = import_document(unla_orders("http://h"), format="unla")
    assert doc["tools"][1]["headers"] == {"Content-Type": "multipart/form-data"}
    assert doc["tools"][0]["headers"] == {"Content-Type": "application/json"}  # a requestBody keeps its own


@pytest.mark.parametrize(("go", "line", "construct", "jinja"), [
    ("{\n  {{ range $x := .Args.items }}{{ if $x.skip }}{{ break }}{{ end }}{{ end }}\n}", 2, "{{ break }}",
     "{% for x in items if cond %}"),
    ("{{ $total := 0 }}\n{{ range .Args.items }}\n{{ $total = add $total .qty }}{{ end }}{{ $total }}", 3,
     "{{ $total = add $total .qty }}", "{% set ns = namespace(total=…) %}"),
    ('x\n{{ define "row" }}r{{ end }}', 2, '{{ define "row" }}', "{% macro name() %}"),
    ("{{ quote .Args.a }}", 1, "{{ quote .Args.a }}", "{{ x | tojson }}"),
    ('{{ printf "%T" .Args.a }}', 1, '{{ printf "%T" .Args.a }}', '{{ "%s, %d" | format(a, b) }}'),
])
def test_a_refused_construct_names_line_construct_and_the_jinja_to_write(go, line, construct, jinja):
    doc = unla_orders("http://h")
    doc["tools"][0]["requestBody"] = go
    with pytest.raises(TemplateError) as info:
        import_document(doc, format="unla")
    message = str(info.value)
    assert message.startswith("default/orders: tools[0].requestBody: cannot translate"), message
    assert f"line {line}: {construct}: " in message, message
    assert jinja in message, message


@pytest.mark.parametrize(("go", "context", "expected"), [
    ("{{ $n := len .Args.xs }}{{ $n }}/{{ add1 $n }}/{{ sub 10 $n }}/{{ mul $n 3 }}", {"xs": [1, 2]}, "2/3/8/6"),
    ("{{ range .Args.xs }}[{{ . }}]{{ else }}none{{ end }}", {"xs": []}, "none"),
    ("{{ range $v := .Args.xs }}{{ $v }}{{ end }}", {"xs": ["a", "b"]}, "ab"),
    ("{{ index .Args.xs 1 }}|{{ index .Args.m \"k\" }}|{{ $k := \"k\" }}{{ index .Args.m $k }}",
     {"xs": ["a", "b"], "m": {"k": "v"}}, "b|v|v"),
    ("{{ with $u := .Args.user }}{{ $u.name }}/{{ .name }}{{ else }}anon{{ end }}", {"user": {"name": "ann"}},
     "ann/ann"),
    ("{{ with .Args.user }}{{ .name }}{{ else }}anon{{ end }}", {}, "anon"),
    ('{{ if and (gt (len .Args.xs) 1) (ne .Args.mode "dry") }}go{{ else if not .Args.xs }}empty{{ end }}',
     {"xs": [1, 2], "mode": "run"}, "go"),
    ('{{ .Args.name | default "anon" | upper }}', {"name": ""}, "ANON"),
    ('{{ printf "%d items, %.2f, %v, %s" 3 2.5 false "x" }}', {}, "3 items, 2.50, false, x"),
    ("{{ $x := 1 }}{{ if true }}{{ $x := 2 }}{{ $x }}{{ end }}{{ $x }}", {}, "21"),
    ("{{ $x := 1 }}{{ $x = add $x 1 }}{{ $x }}", {}, "2"),
    ('{{ range $k := fromJSON "[{\\"a\\": 1}]" }}{{ $k.a }}{{ end }}', {}, "1"),
])
def test_constructs_render_as_go_renders_them(go, context, expected):
    assert render(translate(go), {"args": context}) == expected


def _write(tmp_path: Path, content: dict) -> Path:
    path = tmp_path / "doc.yaml"
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


def _with_env(base: str = "http://127.0.0.1:5236") -> dict:
    doc = unla_orders(base)
    doc["servers"][0]["config"]["Authorization"] = 'Bearer {{ env "ORDERS_TOKEN" }}'
    return doc


def test_an_env_name_the_gateway_refuses_is_refused_at_import_sdk(tmp_path, monkeypatch):
    monkeypatch.delenv("MCPGW_TEMPLATE_ENV", raising=False)
    gw = Workspace(open_store(f"sqlite:///{tmp_path / 'gw.db'}", check=False))
    gw.store.upgrade()
    text = yaml.safe_dump(_with_env())
    with pytest.raises(TemplateError) as info:
        gw.parse(text, format="unla")
    message = str(info.value)
    assert "default/orders: servers[0].config.Authorization: env('ORDERS_TOKEN') is not allowed" in message
    assert "import is refused" in message
    with pytest.raises(TemplateError):
        gw.parse(text)  # detected as Unla's: the same check
    monkeypatch.setenv("MCPGW_TEMPLATE_ENV", "ORDERS_TOKEN")
    assert gw.parse(text, format="unla")[0]["servers"][0]["config"]["Authorization"] == \
        'Bearer {{ env("ORDERS_TOKEN") }}'


def test_an_env_name_the_gateway_refuses_is_refused_by_the_console_import(monkeypatch):
    from console import importing

    monkeypatch.delenv("MCPGW_TEMPLATE_ENV", raising=False)
    with pytest.raises(ConfigError, match=r"env\('ORDERS_TOKEN'\) is not allowed"):
        importing.convert(json.dumps(_with_env()))


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    full = {k: v for k, v in os.environ.items() if k != "MCPGW_TEMPLATE_ENV"}
    full.update(env or {})
    return subprocess.run([MCPGW, *args], capture_output=True, text=True, env=full, timeout=60)


@pytest.fixture
def cli_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert _cli("db", "upgrade", "--db", url).returncode == 0
    return url


def test_the_cli_refuses_an_env_name_at_import_and_hints_at_the_format(tmp_path, cli_db):
    refused = _cli("import", "--format", "unla", str(_write(tmp_path, _with_env())), "--db", cli_db)
    assert refused.returncode == 1, refused
    assert "env('ORDERS_TOKEN') is not allowed" in refused.stderr and "import is refused" in refused.stderr
    allowed = _cli("import", "--format", "unla", str(_write(tmp_path, _with_env())), "--db", cli_db,
                   env={"MCPGW_TEMPLATE_ENV": "ORDERS_TOKEN"})
    assert allowed.returncode == 0, allowed.stderr
    assert "default/orders" in allowed.stdout

    wrong = _cli("import", "--format", "mcpgw", str(_write(tmp_path, unla_orders("http://h"))), "--db", cli_db)
    assert wrong.returncode == 1
    assert "default/orders: tools[0].endpoint: '{{.Config.base}}/orders': this looks like Unla's format" \
        in wrong.stderr, wrong.stderr
    assert "use --format unla" in wrong.stderr
    assert "unexpected" not in wrong.stderr  # not Jinja's parse error


def test_the_sdk_hints_at_the_format(tmp_path):
    gw = Workspace(open_store(f"sqlite:///{tmp_path / 'gw.db'}", check=False))
    with pytest.raises(ConfigError) as info:
        gw.parse(yaml.safe_dump(unla_orders("http://h")), format="mcpgw")
    assert "this looks like Unla's format (Go templates); use format=\"unla\"" in str(info.value)
    assert len(info.value.errors) == 4  # both endpoints, the request and the response templates


def test_the_api_refuses_an_env_name_and_hints_at_the_format(tmp_path_factory):
    from tests.test_api import error_of, start_api
    from tests.test_api import seed as seed_api

    tmp = tmp_path_factory.mktemp("unla-api")
    url = f"sqlite:///{tmp / 'api.db'}"
    store = seed_api(url)
    base, proc = start_api(url, tmp)
    try:
        from tests.test_api import Api

        admin = Api(base, store, proc).login("admin")
        refused = admin.post("import", params={"format": "unla"}, json=[_with_env()])
        assert refused.status_code == 422, refused.text
        assert "env('ORDERS_TOKEN') is not allowed" in json.dumps(error_of(refused))
        wrong = admin.post("import", params={"format": "mcpgw"}, json=[unla_orders("http://127.0.0.1:5236")])
        assert wrong.status_code == 422, wrong.text
        assert "this looks like Unla's format (Go templates); use format=unla" in error_of(wrong)["message"]
        ok = admin.post("import", params={"format": "unla"}, json=[unla_orders("http://127.0.0.1:5236")])
        assert ok.status_code == 200, ok.text
    finally:
        proc.stop()
        store.close()
