"""Config documents and their history (``/documents``): CRUD, dry-run validation, versions, diff, rollback."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import BadRequest

from mcpgw_sdk.config_model import DEFAULT_TENANT
from mcpgw_sdk.errors import ConfigError, McpgwError, NotFound

from .common import (
    access,
    arg_bool,
    arg_int,
    caller,
    check_id,
    document_body,
    encode,
    json_body,
    store,
)

bp = Blueprint("documents", __name__)
log = logging.getLogger("mcpgw.api")
YAML_ACCEPT = ("application/yaml", "application/x-yaml", "text/yaml")


def validated(content: dict[str, Any]) -> dict[str, Any]:
    """``documents.validate`` with any unexpected failure on odd input reported as a ConfigError, never a 500."""
    from mcpgw_sdk import documents

    try:
        return documents.validate(content)
    except McpgwError:
        raise
    except Exception as exc:  # noqa: BLE001 - arbitrary client input must not become a 500
        log.warning("validate failed unexpectedly: %r", exc)
        raise ConfigError(f"body: not a valid config document ({type(exc).__name__}: {exc})") from None


def tenant_of(content: dict[str, Any]) -> str:
    """The document's tenant (``default`` when absent); 422 unless it is a string."""
    tenant = content.get("tenant", DEFAULT_TENANT)
    if not isinstance(tenant, str) or not tenant:
        raise ConfigError("tenant: must be a non-empty string")
    return tenant


def summary(doc) -> dict[str, Any]:
    """A document without its content (for lists)."""
    return encode(doc, drop=("content",))


def wants_yaml() -> bool:
    """True when the client prefers YAML to JSON."""
    best = request.accept_mimetypes.best_match(["application/json", *YAML_ACCEPT])
    return best in YAML_ACCEPT


def document_response(doc, status: int = 200):
    """A document as JSON (or YAML content when asked), with its version as ETag (and Location when created)."""
    headers = {"ETag": f'"{doc.version}"'}
    if status == 201:
        headers["Location"] = f"{request.root_path}/api/v1/documents/{doc.tenant}/{doc.name}"
    if wants_yaml():
        from mcpgw_sdk.documents import to_yaml

        return Response(to_yaml(doc.content), status=status, mimetype="application/yaml", headers=headers)
    return jsonify(encode(doc)), status, headers


def base_version() -> int | None:
    """The version a writer started from: ``If-Match: "<version>"`` or ``?base_version=``."""
    raw = request.headers.get("If-Match")
    if raw is not None and raw.strip() != "*":
        text = raw.split(",")[0].strip().removeprefix("W/").strip('"')
        try:
            return int(text)
        except ValueError:
            raise BadRequest(f"If-Match: {raw!r} is not a document version") from None
    return arg_int("base_version", minimum=1)


@bp.get("/documents")
def list_documents():
    """Documents the caller may see, by tenant and name (without content)."""
    tenant = request.args.get("tenant")
    if tenant is not None:
        access().require_tenant(tenant)
    docs = store().list_documents(tenant=tenant, include_deleted=arg_bool("include_deleted"))
    return jsonify([summary(d) for d in access().visible(docs)])


@bp.post("/documents")
def create_document():
    """Create a document (JSON or YAML body); 409 when it exists."""
    content = document_body()
    access().require_tenant(tenant_of(content), to="edit")
    validated(content)
    doc = store().create_document(content, author=caller().name, actor=caller())
    return document_response(doc, 201)


@bp.post("/documents/validate")
def validate_document():
    """Dry run: would this document be accepted (alone and next to the stored ones)?"""
    from mcpgw_sdk import documents, policy

    content = document_body()
    access().require_tenant(tenant_of(content), to="edit")
    try:
        normalized = validated(content)
    except ConfigError as exc:
        return jsonify({"valid": False, "errors": exc.errors})
    tenant, name = documents.key(normalized)
    others = [d.content for d in store().list_documents() if (d.tenant, d.name) != (tenant, name)]
    tenants = {t.name: t.prefix for t in store().list_tenants()}
    if tenant not in tenants:  # the store creates it from the first router prefix
        prefixes = documents.prefixes(normalized)
        tenants[tenant] = "/" + (prefixes[0].strip("/").split("/")[0] if prefixes else tenant)
    problems = documents.validate_set([*others, normalized], tenants)
    errors = problems.get((tenant, name), []) + policy.violations(normalized, actor=caller())
    return jsonify({"valid": not errors, "errors": errors})


@bp.get("/documents/<tenant>/<name>")
def get_document(tenant, name):
    """One document: JSON, or its YAML with ``Accept: application/yaml``; ETag is the version."""
    access().require_tenant(tenant, "document")
    return document_response(store().get_document(tenant, name))


@bp.put("/documents/<tenant>/<name>")
def put_document(tenant, name):
    """Replace a document (201 when it is new). ``If-Match``/``?base_version=`` → 409 if it changed meanwhile."""
    access().require_tenant(tenant, "document", to="edit")
    content = document_body()
    content.setdefault("tenant", tenant)
    content.setdefault("name", name)
    for field, expected in (("tenant", tenant), ("name", name)):
        if content[field] != expected:
            raise ConfigError(f"{field}: {content[field]!r} does not match the URL ({expected!r})")
    base = base_version()
    try:
        store().get_document(tenant, name)
        existed = True
    except NotFound:
        existed = False
    validated(content)
    doc = store().save_document(content, author=caller().name, base_version=base, actor=caller())
    return document_response(doc, 200 if existed else 201)


@bp.delete("/documents/<tenant>/<name>")
def delete_document(tenant, name):
    """Delete a document (its history stays; roll back to restore it)."""
    access().require_tenant(tenant, "document", to="delete")
    store().delete_document(tenant, name, author=caller().name, base_version=base_version())
    return "", 204


@bp.get("/documents/<tenant>/<name>/versions")
def list_versions(tenant, name):
    """A document's history, newest first (deleted documents too), without contents."""
    access().require_tenant(tenant, "document")
    versions = store().list_versions(tenant, name)
    if not versions:
        raise NotFound(f"document {tenant}/{name} not found")
    return jsonify([encode(v, drop=("content",)) for v in versions])


@bp.get("/documents/<tenant>/<name>/versions/<int:version>")
def get_version(tenant, name, version):
    """One version with its content (``null`` for a delete)."""
    access().require_tenant(tenant, "document")
    return jsonify(encode(store().get_version(tenant, name, check_id(version, "version"))))


@bp.get("/documents/<tenant>/<name>/diff")
def diff(tenant, name):
    """A unified diff of the YAML of versions ``a`` and ``b``."""
    access().require_tenant(tenant, "document")
    a = arg_int("a", minimum=1)
    b = arg_int("b", minimum=1)
    if a is None or b is None:
        raise BadRequest("query parameters a and b (version numbers) are required")
    return jsonify({"tenant": tenant, "name": name, "a": a, "b": b,
                    "diff": store().diff_versions(tenant, name, a, b)})


@bp.post("/documents/<tenant>/<name>/rollback")
def rollback(tenant, name):
    """Restore a version's content as a new version (also restores deleted documents)."""
    access().require_tenant(tenant, "document", to="roll_back")
    data = json_body("Rollback")
    doc = store().rollback(tenant, name, data["version"], author=caller().name, actor=caller())
    return document_response(doc)
