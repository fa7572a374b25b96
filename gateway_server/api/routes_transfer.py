"""Import and export of config documents (``/import``, ``/import/openapi``, ``/export``)."""

from __future__ import annotations

import logging
import re
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import BadRequest

from mcpgw_sdk.config_model import DEFAULT_TENANT
from mcpgw_sdk.errors import ConfigError, McpgwError

from .common import (
    access,
    arg_choice,
    body_kind,
    body_text,
    caller,
    encode,
    json_body,
    store,
)
from .routes_documents import summary, tenant_of, validated

bp = Blueprint("transfer", __name__)
log = logging.getLogger("mcpgw.api")
FORMATS = ("auto", "mcpgw", "unla")


def _guarded(what: str, func, *args, **kwargs):
    """Run a converter on client input; anything but an McpgwError becomes a ConfigError naming ``what``."""
    try:
        return func(*args, **kwargs)
    except McpgwError:
        raise
    except Exception as exc:  # noqa: BLE001 - arbitrary client input must not become a 500
        log.warning("%s failed unexpectedly: %r", what, exc)
        raise ConfigError(f"{what}: {type(exc).__name__}: {exc}") from None


@bp.post("/import")
def import_documents():
    """Import documents (ours or Unla's; YAML stream or JSON list): all are saved or none."""
    from mcpgw_sdk import documents, unla

    fmt = arg_choice("format", FORMATS, "auto")
    body_kind()  # 415 for anything but JSON or YAML
    text = body_text()
    if not text.strip():
        raise BadRequest("the request body is empty")
    parsed = documents.parse_text(text, source="body")
    if not parsed:
        raise ConfigError("body: holds no documents")
    contents = []
    for index, item in enumerate(parsed):
        if not isinstance(item, dict):
            raise ConfigError(f"documents[{index}]: expected a mapping")
        item = _guarded(f"documents[{index}]", unla.import_document, item, format=fmt, option="format=unla")
        access().require_tenant(tenant_of(item), to="import")
        validated(item)
        contents.append(item)
    saved = store().import_documents(contents, author=caller().name, actor=caller())
    return jsonify({"documents": [summary(d) for d in saved]})


def fetch_spec(url: str) -> str:
    """Download a spec through the outbound guard: the admin's URL is trusted as if written in a document,
    a redirect elsewhere must lead to a public address; 4 MiB and 10 s at most."""
    from ..backends.guard import fetch

    resp = fetch(url, timeout=10.0, max_bytes=4 * 1024 * 1024)
    if resp.status >= 400:
        raise ConfigError(f"{url} answered HTTP {resp.status}")
    return resp.text


def _load(data: dict[str, Any]) -> dict[str, Any]:
    """The spec of an import request: ``spec`` is always the document itself (an object or YAML/JSON text,
    never a path or URL the server would open); only an admin's ``url`` is fetched, through the guard."""
    from mcpgw_sdk.openapi import parse_spec_text

    if ("spec" in data) == ("url" in data):
        raise ConfigError("give exactly one of spec (the document) or url")
    if "url" in data:
        access().require_fetch_url()
        if not data["url"].startswith(("http://", "https://")):
            raise ConfigError("url: must be an http:// or https:// URL")
        try:
            text = fetch_spec(data["url"])
        except Exception as exc:  # noqa: BLE001 - the guard's refusal or the network failure is the reason (422)
            raise ConfigError(f"url: cannot fetch the spec: {exc}") from None
        return _guarded("url", parse_spec_text, text, where="url")
    spec = data["spec"]
    if isinstance(spec, str):
        spec = _guarded("spec", parse_spec_text, spec, where="spec")
    if not isinstance(spec, dict):
        raise ConfigError("spec: must be an OpenAPI/Swagger document (an object)")
    return spec


@bp.post("/import/openapi")
def import_openapi():
    """Turn an OpenAPI/Swagger spec into a document; ``dry_run`` returns it and its tools without saving."""
    from mcpgw_sdk.openapi import from_openapi

    data = json_body("OpenApiImport")
    tenant = data.get("tenant", DEFAULT_TENANT)
    access().require_tenant(tenant, to="import")
    spec = _load(data)
    content = _guarded("spec", from_openapi, spec, name=data["name"], tenant=tenant, prefix=data.get("prefix"),
                       base_url=data.get("base_url"), headers=data.get("headers"), config=data.get("config"))
    normalized = validated(content)
    tools = [t.get("name") for t in normalized.get("tools", [])]
    if data.get("dry_run"):
        return jsonify({"dry_run": True, "tools": tools, "document": normalized})
    existed = any(d.name == data["name"] for d in store().list_documents(tenant=tenant))
    doc = store().save_document(content, author=caller().name, actor=caller())
    body = {"dry_run": False, "tools": tools, "document": encode(doc)}
    return jsonify(body), 200 if existed else 201, {"ETag": f'"{doc.version}"'}


def _dump(content: dict[str, Any], fmt: str) -> str:
    from mcpgw_sdk import documents, unla

    if fmt == "unla":
        return yaml.safe_dump(unla.to_unla(content), sort_keys=False, allow_unicode=True)
    return documents.to_yaml(content)


@bp.get("/export")
def export():
    """Documents as one YAML stream (``format=mcpgw`` or ``unla``), optionally one tenant or one document."""
    tenant = request.args.get("tenant")
    name = request.args.get("name")
    fmt = arg_choice("format", ("mcpgw", "unla"), "mcpgw")
    if name is not None and tenant is None:
        raise BadRequest("query parameter name needs tenant")
    if tenant is not None:
        access().require_tenant(tenant, to="export")
    if name is not None:
        docs = [store().get_document(tenant, name)]
    else:
        docs = access().visible(store().list_documents(tenant=tenant))
    text = "---\n".join(_dump(d.content, fmt) for d in docs)
    filename = "mcpgw-export.yaml" if name is None else re.sub(r"[^A-Za-z0-9._-]", "_", f"{tenant}-{name}") + ".yaml"
    return Response(text, mimetype="application/yaml",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
