"""Template render limits: oversized widths, repetition, loops and output are refused within a time and size bound,
and one tenant's hostile template never stalls another tenant's calls."""

from __future__ import annotations

import itertools
import json
import threading
import time

import pytest
import requests

from mcpgw_sdk import TemplateError, settings, templates
from mcpgw_sdk.templates import Template, configure, render, render_deadline
from tests.fixtures_gateway import demo_document, migrated_store, run_backend, run_gateway
from tests.helpers import wait_for


@pytest.fixture(autouse=True)
def _reread_limits():
    """The limits are cached; re-read them after a test changed MCPGW_RENDER_* (monkeypatch undoes it first)."""
    configure()
    yield
    configure()


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
    assert time.monotonic() - started < 2.0  # built, they would take minutes or all memory
    message = str(info.value)
    assert message.startswith("tools[t].requestBody: ")
    assert "render_max_bytes" in message or "'*'" in message or "nested" in message \
        or "sum adds numbers" in message or "too large a number" in message


@pytest.mark.parametrize("text", TIME_VECTORS)
def test_long_renders_stop_at_render_timeout(text, monkeypatch):
    monkeypatch.setenv("MCPGW_RENDER_TIMEOUT", "0.3")
    configure()
    started = time.thread_time()
    with pytest.raises(TemplateError, match=r"tools\[t\].endpoint: rendering took longer than 0.3 s"):
        Template(text, field="tools[t].endpoint").render({})
    assert time.thread_time() - started < 3.0  # CPU seconds: unbounded, each renders for hours


def test_the_callers_deadline_bounds_rendering():
    text = TIME_VECTORS[0]
    started = time.thread_time()
    with pytest.raises(TemplateError, match="rendering took longer"):
        with render_deadline(time.monotonic() + 0.2):
            render(text, {})
    assert time.thread_time() - started < 3.0  # CPU seconds
    with pytest.raises(TemplateError, match="rendering took longer"):
        Template(text).render({}, deadline=time.monotonic() + 0.1)


def test_limits_come_from_settings(monkeypatch):
    monkeypatch.setenv("MCPGW_RENDER_MAX_BYTES", "100")
    configure()
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


# -- the review's bypasses: sizes checked before the call, an allow-list of methods, the deadline on every step ----

# With render_max_bytes at 10,000 each of these would build 5-30 MB (not gigabytes, should the check regress).
PRE_CHECK_VECTORS = [
    "{{ ('x' * 5000).translate({120: 'y' * 5000}) }}",
    "{{ ('y' * 5000).encode().join(['a'.encode()] * 1000) }}",
    "{{ (1).to_bytes(20000000, 'big') }}",
    "{% set s = 'x' * 9000 %}{{ ('{0}' * 3000).format(s) }}",
    "{% set s = 'x' * 9000 %}{{ ('{a}' * 3000).format_map({'a': s}) }}",
    "{% set s = 'x' * 9000 %}{{ ('%(a)s' * 1000) % {'a': s} }}",
    "{% set s = 'x' * 9000 %}{{ ('%s' * 1000) % ((s,) * 1000) }}",
    "{% set s = 'x' * 9000 %}{{ ('%(a)s' * 1000)|format(a=s) }}",
    "{% set s = 'x' * 9000 %}{{ ('{0!r}' * 100).format(s) }}",
]


@pytest.mark.parametrize("text", PRE_CHECK_VECTORS)
def test_results_are_refused_before_they_are_built(text):
    import tracemalloc

    configure(max_bytes=10_000)
    template = Template(text, field="tools[t].requestBody")
    with pytest.raises(TemplateError):
        template.render({})  # compiles outside the measurement
    tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as info:
            template.render({})
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"the refused render allocated {peak} bytes first"
    message = str(info.value)
    assert message.startswith("tools[t].requestBody: ")
    assert "render_max_bytes" in message or "not allowed" in message, message


@pytest.mark.parametrize(("text", "expected"), [
    ("{{ 'A b'.lower().split() }} {{ args.d.get('x') }} {{ args.d.keys()|list }}", '["a","b"] 1 ["x","y"]'),
    ("{{ ' a '.strip().upper().startswith('A') }} {{ 'a,b'.split(',')|length }} {{ 'abc'.find('c') }}", "true 2 2"),
    ("{{ '{a}-{b}'.format_map({'a': 1, 'b': 2}) }} {{ '%(a)s' % {'a': 'z'} }} {{ '{0!r}'.format('q') }}",
     "1-2 z 'q'"),
    ("{{ (7).bit_length() }} {{ 'xy'.replace('x', 'z') }} {{ '-'.join(['a', 'b']) }}", "3 zy a-b"),
])
def test_allowed_methods_still_work(text, expected):
    assert render(text, {"args": {"d": {"x": 1, "y": 2}}}) == expected


@pytest.mark.parametrize("text", ["{{ 'x'.encode() }}", "{{ args.d.copy() }}", "{{ 'ab'.maketrans('a', 'b') }}",
                                  "{{ (1).to_bytes(2, 'big') }}", "{% set f = 'x'.translate %}{{ f({}) }}"])
def test_other_methods_of_builtin_values_are_refused(text):
    with pytest.raises(TemplateError, match="is not allowed in templates"):
        render(text, {"args": {"d": {}}})


def _slow_list() -> list[str]:
    import random

    rng = random.Random(9)
    return ["".join(rng.choices("abcdefghij", k=5)) for _ in range(16_000)]  # under the sorting cap


def test_builtin_filters_count_as_steps_and_yield(monkeypatch):
    configure(timeout=0.3)
    yields: list[float] = []
    here, real_sleep = threading.get_ident(), time.sleep

    def sleep(seconds):
        # templates.time is the time module: other threads of this process (a reloader left by an earlier test)
        # sleep through it too; only this thread's yields count, and the others still really sleep.
        if threading.get_ident() != here:
            return real_sleep(seconds)
        yields.append(time.thread_time())  # CPU time: a busy machine that deschedules the test adds none

    monkeypatch.setattr(templates.time, "sleep", sleep)
    text = "{% for i in range(2000) %}{% set x = l|sort(reverse=true) %}{% endfor %}done"  # ~6 s unbounded
    context = {"l": _slow_list()}
    cpu_started = time.thread_time()
    with pytest.raises(TemplateError, match="rendering took longer than 0.3 s"):
        render(text, context)
    # CPU, not wall time: a busy machine stretches the wall clock, not the work done before the deadline.
    elapsed = time.thread_time() - cpu_started
    assert elapsed < 2.0, f"the render worked {elapsed:.2f} s of CPU past a 0.3 s limit"
    gaps = [b - a for a, b in zip([cpu_started, *yields], yields, strict=False)]
    assert yields and max(gaps) < 0.2, f"other greenlets waited up to {max(gaps or [elapsed]):.2f} s of CPU"


@pytest.mark.parametrize("name", ["sort", "list", "unique", "map('upper')", "select", "pprint", "dictsort",
                                  "groupby('x')"])
def test_heavy_filters_refuse_inputs_above_the_limit(name):
    configure(max_bytes=10_000)
    value = {str(i): i for i in range(5000)} if name == "dictsort" else [str(i) for i in range(5000)]
    with pytest.raises(TemplateError, match=r"its input is more than render_max_bytes \(10000\)|would sort more"):
        render(f"{{{{ l|{name}|list|length }}}}", {"l": value})
    assert render("{{ l|length }}", {"l": value}) == "5000"  # counting is not copying


def test_sorting_filters_refuse_too_many_items():
    with pytest.raises(TemplateError, match=r"\|sort would sort more than 16384 items"):
        render("{{ l|sort|length }}", {"l": list(range(100_000))})
    with pytest.raises(TemplateError, match=r"\|unique would sort more than 16384 items"):
        render("{{ range(100000)|map('string')|unique|list|length }}", {})
    assert render("{{ l|sort|first }}", {"l": list(range(16_000, 0, -1))}) == "1"


def test_limits_are_read_once_and_reset_by_configure(monkeypatch):
    calls: list[str] = []
    real = settings.get
    monkeypatch.setattr(settings, "get", lambda name, value=None: calls.append(name) or real(name, value))
    template = Template("{{ 'x' * 200 }}")
    template.render({})
    calls.clear()
    for _ in range(3):
        template.render({})
    assert not [name for name in calls if name.startswith("render_")], calls
    monkeypatch.setenv("MCPGW_RENDER_MAX_BYTES", "100")
    assert len(template.render({})) == 200  # cached until configure()
    configure()
    with pytest.raises(TemplateError, match=r"render_max_bytes \(100\)"):
        template.render({})
    configure(max_bytes=1000)
    assert len(template.render({})) == 200


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
    # A 4 s render bound: a stalled hub would hold the other tenant for ~4 s, far from the 1.5 s allowed,
    # so a loaded machine cannot make a yielding gateway look stalled.
    gw = run_gateway(procs, url, revision=revision, env={"MCPGW_RENDER_TIMEOUT": "4"})
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
    deadline = time.monotonic() + 20
    while thread.is_alive() and time.monotonic() < deadline:
        started = time.monotonic()
        result = _call(normal, normal_headers, "list_users", timeout=10)
        assert not result.get("isError"), result
        assert time.monotonic() - started < 1.5, "a hostile template stalled another tenant's call"
        answered_meanwhile += thread.is_alive()
    thread.join(1)
    assert answered_meanwhile >= 2, "the other tenant's calls did not run while the hostile one did"
    assert not thread.is_alive(), "the hostile call did not finish within its bound"
    assert box["result"]["isError"] is True
    text = box["result"]["content"][0]["text"]
    assert "tools[spin].requestBody" in text and "rendering took longer than 4 s" in text, text
    assert box["seconds"] < 8.0

    huge = _call(hostile, hostile_headers, "huge", timeout=30)
    assert huge["isError"] is True
    assert "tools[huge].requestBody" in huge["content"][0]["text"]
    assert "render_max_bytes" in huge["content"][0]["text"]
    assert _rss_mb(pid) - rss_before < 200, "rendering took hundreds of megabytes"
    wait_for(lambda: not _call(normal, normal_headers, "list_users").get("isError"), timeout=5,
             what="the gateway serving afterwards")
