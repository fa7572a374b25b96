"""The shortcuts taken for scale give the answers of the long ways: endpoint reads, text checks, big answers, reloads."""

from __future__ import annotations

import copy

import pytest

from gateway_server.mcp import jsonrpc
from gateway_server.snapshot import build_snapshot
from gateway_server.transports import base
from mcpgw_sdk import templates
from mcpgw_sdk.names import text_errors
from mcpgw_sdk.records import ConfigSet, Document

TEMPLATES = [
    "{{ config.base }}/users/{id}?q={{ args.q }}", "{{config.base}}/x", "{{ args }}", "a{{ args.a }}{{ args.a }}b",
    "{{ args.a.b }}/{{ env }}", "{{ args['x'] }}", "{{ args.in }}", "{{ true }}/a", "x {{ config.base }}\n",
    "{{ a }}{{ b | upper }}", "{{- args.a }}", "}} {{ args.b }}", "{{ args.a }} {{", "{{ args.a\n}}",
    "{% if args.a %}{{ args.a }}{% endif %}", "{# c #}{{ args.z }}",
]


@pytest.mark.parametrize("text", TEMPLATES)
def test_argument_refs_without_the_parser_match_the_parser(text, monkeypatch):
    fast = templates.argument_refs(text)
    monkeypatch.setattr(templates, "_simple_refs", lambda _text: None)
    assert fast == templates.argument_refs(text)


def test_text_errors_finds_what_the_walk_finds():
    assert text_errors({"a": ["ok", "x\x00"]}) == ["a[1]: must not contain NUL (\\x00) or lone surrogates"]
    assert text_errors({"a": "\ud800"}) == ["a: must not contain NUL (\\x00) or lone surrogates"]
    assert text_errors({"a": "\\u0000", "b": "é"}) == []  # a written backslash-u0000 is text, not NUL


@pytest.mark.parametrize("message", [
    {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": 'x"\\\n' * 40 + "é\u2028"}]}},
    {"jsonrpc": "2.0", "id": 2, "result": {"content": [{"type": "text", "text": "a"}, {"type": "text",
     "text": "b\ud800" * 60}, {"type": "text", "text": "c😀" * 70}], "structuredContent": {"k": float("nan")}}},
    {"jsonrpc": "2.0", "id": 3, "result": {"content": [{"type": "text", "text": "z" * 100}], "_meta": {"a": "q" * 80}}},
    {"jsonrpc": "2.0", "id": 4, "result": {"tools": [{"name": "t" * 200}]}},
])
def test_big_answers_go_out_in_slices_byte_for_byte(message, monkeypatch):
    monkeypatch.setattr(base, "SLICE", 50)
    sent: dict = {}
    body = b"".join(base.respond_json(lambda status, headers: sent.update(headers), 200, message))
    assert body == jsonrpc.dumps(message)
    assert int(sent["Content-Length"]) == len(body)


def _doc(i: int) -> dict:
    return {"name": f"d{i}", "tenant": "default", "routers": [{"server": "s", "prefix": f"/default/d{i}"}],
            "servers": [{"name": "s", "config": {"base": "http://127.0.0.1:9"}}],
            "tools": [{"name": "get_user", "method": "GET", "endpoint": "{{ config.base }}/users/{email}",
                       "args": [{"name": "email", "position": "path", "required": True, "type": "string"}]}]}


def test_a_reload_rebuilds_only_the_documents_that_changed():
    docs = [_doc(i) for i in range(3)]
    first = build_snapshot(ConfigSet(1, tuple(Document("default", f"d{i}", d, 1) for i, d in enumerate(docs)), (), ()))
    edited = copy.deepcopy(docs[1])
    edited["tools"][0]["description"] = "edited"
    second = build_snapshot(ConfigSet(2, (Document("default", "d0", docs[0], 1), Document("default", "d1", edited, 2),
                                          Document("default", "d2", copy.deepcopy(docs[2]), 1)), (), ()), first)
    assert second.routes["/default/d0"] is first.routes["/default/d0"]
    assert second.routes["/default/d2"] is first.routes["/default/d2"]  # equal content, same version
    assert second.routes["/default/d1"] is not first.routes["/default/d1"]
    assert second.routes["/default/d1"].tool_list[0]["description"] == "edited"
    assert set(second.backends) == {d for key in second.built for d in second.built[key]}
    third = build_snapshot(ConfigSet(3, (Document("default", "d0", docs[0], 1),), (), ()), second)
    assert set(third.routes) == {"/default/d0"} and len(third.backends) == 1


def test_a_reload_of_stored_documents_skips_validation_and_rebuilds_only_the_edited_one(sqlite_store, monkeypatch):
    from gateway_server import snapshot

    validated = []
    real = snapshot.validate
    monkeypatch.setattr(snapshot, "validate", lambda content: validated.append(content["name"]) or real(content))
    sqlite_store.import_documents([_doc(i) for i in range(3)])
    first = build_snapshot(sqlite_store.load_config())
    assert validated == [] and not first.errors and len(first.routes) == 3
    edited = _doc(1)
    edited["tools"][0]["description"] = "edited"
    sqlite_store.save_document(edited)
    second = build_snapshot(sqlite_store.load_config(), first)
    assert validated == []
    assert second.routes["/default/d0"] is first.routes["/default/d0"]
    assert second.routes["/default/d2"] is first.routes["/default/d2"]
    assert second.routes["/default/d1"] is not first.routes["/default/d1"]
    assert second.routes["/default/d1"].tool_list[0]["description"] == "edited"
    assert second.routes["/default/d1"].digest != first.routes["/default/d1"].digest
