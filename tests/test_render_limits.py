"""Template render limits: oversized widths, repetition, loops and output are refused within a time and size bound,
and one tenant's hostile template never stalls another tenant's calls."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
import requests

from mcpgw_sdk import TemplateError
from mcpgw_sdk.templates import Template, render, render_deadline
from tests.fixtures_gateway import demo_document, migrated_store, run_backend, run_gateway
from tests.helpers import wait_for

SIZE_VECTORS = [
    "{{ '%2000000000d'|format(1) }}",
    "{{ '%2000000000d' % 1 }}",
    "{{ '%*d' % (2000000000, 1) }}",
    "{{ '%.2000000000f' % 1.5 }}",
    "{{ '{:2000000000}'.format(1) }}",
    "{{ '{:{w}}'.format(1, w=2000000000) }}",
    "{{ 'x'|center(2000000000) }}",
    "{{ 'x'.ljust(2000000000) }}",
    "{{ 'x'.rjust(2000000000) }}",
    "{{ 'x'.zfill(2000000000) }}",
    "{{ 'x'|indent(2000000000, true) }}",
    "{{ ('x\n' * 500000)|indent(100) }}",
    "{{ 'x x x'|wordwrap(1, wrapstring='y' * 1000000) }}",
    "{{ 'x' * 10**9 }}",
    "{{ 10**9 * 'x' }}",
    "{% set s = 'x' * 1000000 %}{{ s ~ s }}",
    "{% set s = 'x' * 1000000 %}{{ s + s }}",
    "{{ ('x' * 1000000).replace('x', 'yy') }}",
    "{{ ('x' * 1000000)|replace('x', 'yy') }}",
    "{{ ('x' * 1000)|list|join('y' * 100000) }}",
    "{{ ('y' * 100000).join(('x' * 1000)|list) }}",
    "{% set s = 'x' * 1000 %}{% set l = [s] * 1000 %}{{ ([l] * 1000)|tojson|length }}",
    "{% set s = 'x' * 1000000 %}{% set a = [s, s] %}{{ a|length }}",
    "{% set s = 'x' * 900000 %}{{ dict(a=s, b=s)|length }}",
    "{{ [[1] * 100000]|sum(start=[]) }}",
    "{{ range(10)|batch(2000000000, 'x')|list|length }}",
    "{{ [1]|slice(2000000000)|list|length }}",
    "{{ (10**1000)**1000 }}",
    "{% set s %}{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}{{ s|length }}",
    "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",  # 10 MB of output
]

TIME_VECTORS = [
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
    "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
]


@pytest.mark.parametrize("text", SIZE_VECTORS)
def test_oversized_values_are_refused_before_they_are_built(text):
    started = time.monotonic()
    with pytest.raises(TemplateError) as info:
        Template(text, field="tools[t].requestBody").render({})
    assert time.monotonic() - started < 0.5
    message = str(info.value)
    assert message.startswith("tools[t].requestBody: ")
    assert "render_max_bytes" in message or "'*'" in message or "nested" in message \
        or "sum adds numbers" in message or "too large a number" in message


@pytest.mark.parametrize("text", TIME_VECTORS)
def test_long_renders_stop_at_render_timeout(text, monkeypatch):
    monkeypatch.setenv("MCPGW_RENDER_TIMEOUT", "0.3")
    started = time.monotonic()
    with pytest.raises(TemplateError, match=r"tools\[t\].endpoint: rendering took longer than 0.3 s"):
        Template(text, field="tools[t].endpoint").render({})
    assert time.monotonic() - started < 0.8


def test_the_callers_deadline_bounds_rendering():
    text = TIME_VECTORS[0]
    started = time.monotonic()
    with pytest.raises(TemplateError, match="rendering took longer"):
        with render_deadline(time.monotonic() + 0.2):
            render(text, {})
    assert time.monotonic() - started < 0.6
    with pytest.raises(TemplateError, match="rendering took longer"):
        Template(text).render({}, deadline=time.monotonic() + 0.1)


def test_limits_come_from_settings(monkeypatch):
    monkeypatch.setenv("MCPGW_RENDER_MAX_BYTES", "100")
    with pytest.raises(TemplateError, match=r"render_max_bytes \(100"):
        render("{{ 'x' * 101 }}", {})
    with pytest.raises(TemplateError, match=r"render_max_bytes \(100"):
        render("{% for i in range(101) %}x{% endfor %}", {})
    assert render("{{ 'x' * 100 }}", {}) == "x" * 100


@pytest.mark.parametrize(("text", "expected"), [
    ("{% for i in args.b %}{{ loop.index }}:{{ i }}{% if not loop.last %},{% endif %}{% endfor %}", "1:1,2:2,3:3"),
    ("{% for k, v in args.d.items() %}{{ k }}={{ v }};{% endfor %}", "x=1;y=2;"),
    ("{{ '%s-%05d' % (args.a, 42) }}", "A-00042"),
    ("{{ '%-4s|'|format(args.a) }}", "A   |"),
    ("{{ '{}-{:>3}'.format(args.a, 3) }}", "A-  3"),
    ("{{ args.b|join(',') }} {{ args.b|sum }} {{ [args.a, 1] }} {{ {'k': args.a} }}", '1,2,3 6 ["A",1] {"k":"A"}'),
    ("{{ 'x'|center(5) }}|{{ 'ab'|indent(2, true) }}|{{ 'ab'.ljust(4) }}|", "  x  |  ab|ab  |"),
    ("{{ 2 ** 10 }} {{ 3 * 4 }} {{ 1 + 2 }} {{ 7 % 3 }} {{ 'ab' * 2 }} {{ [1] + [2] }}", "1024 12 3 1 abab [1,2]"),
    ("{% for x in args.missing %}x{% else %}none{% endfor %}", "none"),
    ("{{ args.d|tojson }} {{ dict(a=1) }} {{ args.b|batch(2)|list }}", '{"x":1,"y":2} {"a":1} [[1,2],[3]]'),
])
def test_ordinary_templates_render_as_before(text, expected):
    assert render(text, {"args": {"a": "A", "b": [1, 2, 3], "d": {"x": 1, "y": 2}}}) == expected


def test_lists_cannot_be_changed_in_place():
    with pytest.raises(TemplateError, match="SecurityError"):
        render("{{ args.b.append(1) }}", {"args": {"b": []}})


# -- end to end: one tenant's hostile template does not stall another tenant's calls --------------------------

HOSTILE_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def _session(url: str) -> dict:
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = requests.post(url, json={"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        headers=headers, timeout=10)
    assert init.status_code == 200, init.text
    headers["Mcp-Session-Id"] = init.headers["Mcp-Session-Id"]
    requests.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers, timeout=10)
    return headers


_ids = itertools.count(1)


def _call(url: str, headers: dict, name: str, timeout: float = 30) -> dict:
    rid = next(_ids)
    resp = requests.post(url, json={"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                    "params": {"name": name, "arguments": {}}}, headers=headers, timeout=timeout)
    assert resp.status_code == 200, resp.text
    if resp.headers.get("Content-Type", "").startswith("text/event-stream"):
        messages = [json.loads(line[5:]) for line in resp.text.splitlines() if line.startswith("data:")]
        return next(m for m in messages if m.get("id") == rid)["result"]
    return resp.json()["result"]


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_a_hostile_template_does_not_stall_other_tenants(procs):
    backend = run_backend(procs)
    url = f"sqlite:///{procs.log_dir / 'gw.db'}"
    store = migrated_store(url)
    try:
        store.save_document(demo_document(backend))
        store.create_tenant("evil", prefix="/evil")
        store.save_document({
            "name": "hostile", "tenant": "evil", "routers": [{"prefix": "/evil/mcp-hostile", "server": "h"}],
            "servers": [{"name": "h", "config": {"baseUrl": backend}}],
            "tools": [
                {"name": "spin", "method": "POST", "endpoint": "{{ config.baseUrl }}/users",
                 "requestBody": HOSTILE_LOOP},
                {"name": "huge", "method": "POST", "endpoint": "{{ config.baseUrl }}/users",
                 "requestBody": "{{ 'x' * 300000000 }}"},
            ]})
        revision = store.revision()
    finally:
        store.close()
    gw = run_gateway(procs, url, revision=revision)
    pid = procs.items[-1].popen.pid
    normal = gw.mcp_url()
    hostile = gw.mcp_url("/evil/mcp-hostile")
    normal_headers, hostile_headers = _session(normal), _session(hostile)
    assert not _call(normal, normal_headers, "list_users").get("isError")
    rss_before = _rss_mb(pid)

    box: dict = {}

    def spin():
        started = time.monotonic()
        box["result"] = _call(hostile, hostile_headers, "spin", timeout=60)
        box["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    answered_meanwhile = 0
    deadline = time.monotonic() + 15
    while thread.is_alive() and time.monotonic() < deadline:
        started = time.monotonic()
        result = _call(normal, normal_headers, "list_users", timeout=10)
        assert not result.get("isError"), result
        assert time.monotonic() - started < 1.0, "a hostile template stalled another tenant's call"
        answered_meanwhile += thread.is_alive()
    thread.join(1)
    assert answered_meanwhile >= 2, "the other tenant's calls did not run while the hostile one did"
    assert not thread.is_alive(), "the hostile call did not finish within its bound"
    assert box["result"]["isError"] is True
    text = box["result"]["content"][0]["text"]
    assert "tools[spin].requestBody" in text and "rendering took longer than 1 s" in text, text
    assert box["seconds"] < 3.0

    huge = _call(hostile, hostile_headers, "huge", timeout=30)
    assert huge["isError"] is True
    assert "tools[huge].requestBody" in huge["content"][0]["text"]
    assert "render_max_bytes" in huge["content"][0]["text"]
    assert _rss_mb(pid) - rss_before < 200, "rendering took hundreds of megabytes"
    wait_for(lambda: not _call(normal, normal_headers, "list_users").get("isError"), timeout=5,
             what="the gateway serving afterwards")
