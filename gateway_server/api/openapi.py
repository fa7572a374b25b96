"""The management API's OpenAPI 3.1 document, written by hand, and the request-body checks it drives.

The request-body schemas below are the ones the routes enforce (:func:`check_body`),
so the published document and the server cannot drift apart on inputs; the tests
run schemathesis against the live API to hold the responses to it too.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from jsonschema import Draft202012Validator

from mcpgw_sdk.errors import ConfigError
from mcpgw_sdk.records import ROLES

bp = Blueprint("meta", __name__)

NAME = {"type": "string", "pattern": "^[A-Za-z0-9_.@-]{1,64}$"}
TENANT_NAME = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}
PREFIX = {"type": "string", "pattern": "^(/[A-Za-z0-9_.-]+)+$", "maxLength": 200}
STRINGS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200}, "maxItems": 200}
WHEN = {"type": ["string", "null"], "format": "date-time"}
ROLE = {"type": "string", "enum": list(ROLES)}
PASSWORD = {"type": "string", "minLength": 8, "maxLength": 1024}
INT64_MAX = 2**63 - 1  #: the largest id or version a database column holds


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = True) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


#: Request bodies the routes accept; checked by :func:`check_body`.
INPUTS: dict[str, dict[str, Any]] = {
    "Login": _obj({"username": {"type": "string", "minLength": 1, "maxLength": 200},
                   "password": {"type": "string", "minLength": 1, "maxLength": 1024}}, ("username", "password")),
    "Refresh": _obj({"refresh_token": {"type": "string", "minLength": 1}}, ("refresh_token",)),
    "Logout": _obj({"refresh_token": {"type": "string", "minLength": 1},
                    "all": {"type": "boolean", "description": "end every session of the user, on every device"}},
                   ("refresh_token",)),
    "PasswordChange": _obj({"current_password": {"type": "string", "minLength": 1, "maxLength": 1024},
                            "new_password": PASSWORD}, ("current_password", "new_password")),
    "UserCreate": _obj({"name": NAME, "password": PASSWORD, "role": ROLE, "tenants": STRINGS,
                        "active": {"type": "boolean"}}, ("name", "password")),
    "UserUpdate": _obj({"role": ROLE, "active": {"type": "boolean"}, "tenants": STRINGS, "password": PASSWORD}),
    "TenantCreate": _obj({"name": TENANT_NAME, "prefix": PREFIX,
                          "description": {"type": "string", "maxLength": 2000}}, ("name",)),
    "TenantUpdate": _obj({"prefix": PREFIX, "description": {"type": "string", "maxLength": 2000}}),
    "KeyCreate": _obj({"tenant": {"type": "string", "minLength": 1, "maxLength": 64},
                       "name": {"type": "string", "maxLength": 100}, "user": NAME, "servers": STRINGS,
                       "tools": STRINGS, "expires_at": {"type": "string", "format": "date-time"}}, ("tenant",)),
    "Rollback": _obj({"version": {"type": "integer", "minimum": 1, "maximum": INT64_MAX}}, ("version",)),
    "SecretValue": _obj({"value": {"type": "string", "minLength": 1, "maxLength": 8192,
                                   "description": "the secret (at most 8 KiB of UTF-8); never shown back",
                                   "writeOnly": True}}, ("value",)),
    "OpenApiImport": _obj({
        "spec": {"type": ["object", "string"], "description": "the OpenAPI/Swagger document (object, YAML or JSON text)"},
        "url": {"type": "string", "description": "where to fetch the spec (admins only)"},
        "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,64}$"},
        "tenant": {"type": "string", "minLength": 1, "maxLength": 64},
        "prefix": PREFIX,
        "base_url": {"type": "string", "pattern": "^https?://"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "headers every tool sends (name → template, kept in the server's config)"},
        "config": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "server config values to set or replace (name → template), e.g. credentials"},
        "dry_run": {"type": "boolean"},
    }, ("name",)),
    "ChatCreate": _obj({"title": {"type": "string", "maxLength": 200}, "prefix": {"type": "string", "maxLength": 200},
                        "settings": {"type": "object"}}),
    "ChatUpdate": _obj({"title": {"type": "string", "maxLength": 200}, "settings": {"type": "object"}}),
    "ChatMessageCreate": _obj({"role": {"type": "string", "enum": ["system", "user", "assistant", "tool"]},
                               "content": {"type": "object"}}, ("role", "content")),
}

OUTPUTS: dict[str, dict[str, Any]] = {
    "Error": _obj({"error": _obj({"code": {"type": "string"}, "message": {"type": "string"},
                                  "details": {"type": "array"}}, ("code", "message", "details"))}, ("error",)),
    "Tokens": _obj({"access_token": {"type": "string"}, "refresh_token": {"type": "string"},
                    "token_type": {"type": "string", "enum": ["Bearer"]}, "expires_in": {"type": "integer"}},
                   ("access_token", "refresh_token", "token_type", "expires_in")),
    "User": _obj({"id": {"type": "integer"}, "name": {"type": "string"}, "role": ROLE, "active": {"type": "boolean"},
                  "tenants": {"type": "array", "items": {"type": "string"}}, "created_at": WHEN},
                 ("id", "name", "role", "active", "tenants")),
    "Tenant": _obj({"id": {"type": "integer"}, "name": {"type": "string"}, "prefix": {"type": "string"},
                    "description": {"type": "string"}}, ("id", "name", "prefix")),
    "ApiKey": _obj({"id": {"type": "integer"}, "name": {"type": "string"}, "prefix": {"type": "string"},
                    "user": {"type": "string"}, "tenant": {"type": "string"},
                    "servers": {"type": "array", "items": {"type": "string"}},
                    "tools": {"type": "array", "items": {"type": "string"}}, "expires_at": WHEN,
                    "last_used_at": WHEN, "revoked": {"type": "boolean"}, "created_at": WHEN},
                   ("id", "name", "prefix", "user", "tenant", "revoked")),
    "DocumentSummary": _obj({"tenant": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "integer"},
                             "updated_at": WHEN, "updated_by": {"type": ["string", "null"]},
                             "deleted": {"type": "boolean"},
                             "problem": {"type": "string", "description": "why the stored content cannot be read "
                                                                          "(empty when it can)"}},
                            ("tenant", "name", "version", "deleted")),
    "VersionSummary": _obj({"tenant": {"type": "string"}, "name": {"type": "string"}, "version": {"type": "integer"},
                            "action": {"type": "string", "enum": ["create", "update", "delete", "revert"]},
                            "content_hash": {"type": "string"}, "author": {"type": ["string", "null"]},
                            "created_at": WHEN, "reverted_from": {"type": ["integer", "null"]}},
                           ("tenant", "name", "version", "action")),
    "Validation": _obj({"valid": {"type": "boolean"}, "errors": {"type": "array", "items": {"type": "string"}}},
                       ("valid", "errors")),
    "Diff": _obj({"tenant": {"type": "string"}, "name": {"type": "string"}, "a": {"type": "integer"},
                  "b": {"type": "integer"}, "diff": {"type": "string"}}, ("a", "b", "diff")),
    "Chat": _obj({"id": {"type": "string"}, "user": {"type": "string"}, "title": {"type": "string"},
                  "prefix": {"type": "string"}, "settings": {"type": "object"}, "created_at": WHEN,
                  "updated_at": WHEN}, ("id", "user", "title", "prefix", "settings")),
    "ChatMessage": _obj({"session_id": {"type": "string"}, "seq": {"type": "integer"}, "role": {"type": "string"},
                         "content": {"type": "object"}, "created_at": WHEN}, ("session_id", "seq", "role", "content")),
    "AuditRecord": _obj({"id": {"type": ["integer", "null"]}, "ts": WHEN, "tenant": {"type": "string"},
                         "prefix": {"type": "string"}, "server": {"type": "string"}, "tool": {"type": "string"},
                         "outcome": {"type": "string"}, "latency_ms": {"type": "number"},
                         "user": {"type": ["string", "null"]}, "key_id": {"type": ["integer", "null"]},
                         "session_id": {"type": ["string", "null"]}, "error": {"type": ["string", "null"]}},
                        ("ts", "tenant", "tool", "outcome")),
    "SecretInfo": _obj({"owner_kind": {"type": "string", "enum": ["user", "key", "tenant"]},
                        "owner": {"type": "string"}, "name": {"type": "string"}, "updated_at": WHEN,
                        "updated_by": {"type": ["string", "null"]}}, ("owner_kind", "owner", "name")),
    "Status": _obj({"revision": {"type": "integer"}, "documents": {"type": "integer"}, "tenants": {"type": "integer"},
                    "version": {"type": "string"}, "read_only": {"type": "boolean"}},
                   ("revision", "documents", "tenants")),
}
OUTPUTS["Document"] = {**OUTPUTS["DocumentSummary"],
                       "properties": {**OUTPUTS["DocumentSummary"]["properties"], "content": {"type": "object"}},
                       "required": [*OUTPUTS["DocumentSummary"]["required"], "content"]}
OUTPUTS["Version"] = {**OUTPUTS["VersionSummary"],
                      "properties": {**OUTPUTS["VersionSummary"]["properties"],
                                     "content": {"type": ["object", "null"]}}}
OUTPUTS["ApiKeyCreated"] = {**OUTPUTS["ApiKey"],
                            "properties": {**OUTPUTS["ApiKey"]["properties"], "secret": {"type": "string"}},
                            "required": [*OUTPUTS["ApiKey"]["required"], "secret"]}
OUTPUTS["ImportResult"] = _obj({"documents": {"type": "array", "items": _ref("DocumentSummary")}}, ("documents",))
OUTPUTS["OpenApiImportResult"] = _obj({"dry_run": {"type": "boolean"},
                                       "tools": {"type": "array", "items": {"type": ["string", "null"]}},
                                       "document": {"type": "object"}}, ("dry_run", "tools", "document"))

_VALIDATORS = {name: Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
               for name, schema in INPUTS.items()}


def check_body(name: str, data: Any) -> None:
    """Raise ConfigError listing every way ``data`` breaks the request schema ``name`` (``field: reason``)."""
    errors = []
    for err in sorted(_VALIDATORS[name].iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        field = ".".join(str(p) for p in err.absolute_path) or "body"
        errors.append(f"{field}: {err.message}")
    if errors:
        raise ConfigError(errors[0], errors)


# -- operations ---------------------------------------------------------------------------------------

_ERRORS = {
    400: "Malformed request: bad JSON/YAML body or query parameter",
    401: "Missing, invalid or expired token",
    403: "The caller's role does not allow this",
    404: "No such object (or not visible to the caller)",
    409: "Conflict: exists already, changed meanwhile, or the store is read-only",
    413: "The body is larger than 32 MiB",
    415: "Unsupported Content-Type",
    422: "Invalid input; details lists each field and why",
    429: "Too many failed logins; see Retry-After",
    503: "The database is unavailable (or, for secrets, the server has no usable secrets_key)",
}


def _header(description: str, *, required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": {"type": "string"}}


_ERROR_HEADERS = {
    401: {"WWW-Authenticate": _header("Bearer challenge")},
    429: {"Retry-After": _header("seconds until another attempt is allowed")},
}
ETAG = {"ETag": _header('the document\'s version, quoted: "3"')}
CREATED = {"Location": _header("the URL of the new object")}
_JSON_DOC_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "application/yaml": {"schema": {"type": "object"}},
    },
}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _q(name: str, schema: dict[str, Any], description: str, *, required: bool = False, where: str = "query"):
    return {"name": name, "in": where, "required": required, "description": description, "schema": schema}


def _path(*names: str) -> list[dict[str, Any]]:
    specs = {"version": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
             "key_id": {"type": "integer", "minimum": 1, "maximum": INT64_MAX},
             "secret": {"type": "string", "minLength": 1, "maxLength": 100}}
    return [_q(n, specs.get(n, {"type": "string"}), n.replace("_", " "), required=True, where="path") for n in names]


def _op(op_id: str, summary: str, tag: str, *, ok: dict[int, tuple[str, dict[str, Any] | None]],
        params: list | None = None, body: str | dict | None = None, errors: tuple[int, ...] = (),
        public: bool = False, headers: dict[int, dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag]}
    if params:
        op["parameters"] = params
    if isinstance(body, str):
        op["requestBody"] = {"required": True, "content": _json(_ref(body))}
    elif body is not None:
        op["requestBody"] = body
    responses: dict[str, Any] = {}
    for status, (description, content) in ok.items():
        responses[str(status)] = {"description": description, **({"content": content} if content else {})}
    codes = set(errors) | {400, 422, 503}
    if not public:
        codes |= {401, 403, 404}
    if body is not None:
        codes |= {413, 415}
    for status in sorted(codes):
        responses[str(status)] = {"description": _ERRORS[status], "content": _json(_ref("Error"))}
        if status in _ERROR_HEADERS:
            responses[str(status)]["headers"] = _ERROR_HEADERS[status]
    for status, declared in (headers or {}).items():
        responses[str(status)]["headers"] = declared
    op["responses"] = responses
    if public:
        op["security"] = []
    return op


def _list(name: str) -> dict[str, Any]:
    return _json({"type": "array", "items": _ref(name)})


NO_CONTENT = {204: ("Done", None)}
DOC_OUT = {"application/json": {"schema": _ref("Document")},
           "application/yaml": {"schema": {"type": "object", "description": "the document's content"}}}
DOC_PATH = _path("tenant", "name")
BASE_VERSION = [_q("base_version", {"type": "integer", "minimum": 1, "maximum": INT64_MAX}, "the version the change starts from"),
                _q("If-Match", {"type": "string"}, 'the version the change starts from, as "<version>"',
                   where="header")]
AUDIT_PARAMS = [
    _q("since", {"type": "string", "format": "date-time"}, "records at or after (ISO 8601)"),
    _q("until", {"type": "string", "format": "date-time"}, "records before (ISO 8601)"),
    *[_q(n, {"type": "string"}, f"only this {n}") for n in ("tenant", "prefix", "server", "tool", "user")],
    _q("outcome", {"type": "string", "enum": ["ok", "error", "denied", "timeout"]}, "only this outcome"),
    _q("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size"),
    _q("offset", {"type": "integer", "minimum": 0, "maximum": 2**31 - 1, "default": 0}, "records to skip"),
]

PATHS: dict[str, dict[str, Any]] = {
    "/auth/login": {"post": _op("login", "Exchange user name and password for tokens", "auth", body="Login",
                                ok={200: ("Tokens", _json(_ref("Tokens")))}, errors=(401, 429), public=True)},
    "/auth/refresh": {"post": _op("refresh", "Exchange a refresh token for new tokens", "auth", body="Refresh",
                                  ok={200: ("Tokens", _json(_ref("Tokens")))}, errors=(401,), public=True)},
    "/auth/logout": {"post": _op("logout", "Revoke a refresh token (and the access token sent along); "
                                 "all: true ends every session", "auth", body="Logout", ok=NO_CONTENT,
                                 errors=(401,), public=True)},
    "/me": {"get": _op("me", "The caller's account", "auth", ok={200: ("The caller", _json(_ref("User")))})},
    "/me/password": {"post": _op("changePassword", "Change the caller's password; earlier tokens die", "auth",
                                 body="PasswordChange", ok={200: ("New tokens", _json(_ref("Tokens")))})},
    "/users": {
        "get": _op("listUsers", "Every user (admins)", "users", ok={200: ("Users", _list("User"))}),
        "post": _op("createUser", "Create a user (admins)", "users", body="UserCreate",
                    ok={201: ("Created", _json(_ref("User")))}, errors=(409,), headers={201: CREATED}),
    },
    "/users/{name}": {
        "parameters": _path("name"),
        "get": _op("getUser", "One user (admins)", "users", ok={200: ("The user", _json(_ref("User")))}),
        "patch": _op("updateUser", "Change role, active flag, tenants or password (admins)", "users",
                     body="UserUpdate", ok={200: ("Updated", _json(_ref("User")))}, errors=(409,)),
        "delete": _op("deleteUser", "Delete a user and revoke their keys (admins)", "users", ok=NO_CONTENT,
                      errors=(409,)),
    },
    "/tenants": {
        "get": _op("listTenants", "Tenants (members: their own)", "tenants", ok={200: ("Tenants", _list("Tenant"))}),
        "post": _op("createTenant", "Create a tenant (admins)", "tenants", body="TenantCreate",
                    ok={201: ("Created", _json(_ref("Tenant")))}, errors=(409,), headers={201: CREATED}),
    },
    "/tenants/{name}": {
        "parameters": _path("name"),
        "get": _op("getTenant", "One tenant", "tenants", ok={200: ("The tenant", _json(_ref("Tenant")))}),
        "patch": _op("updateTenant", "Change prefix or description (admins)", "tenants", body="TenantUpdate",
                     ok={200: ("Updated", _json(_ref("Tenant")))}, errors=(409,)),
        "delete": _op("deleteTenant", "Delete a tenant without live documents (admins)", "tenants", ok=NO_CONTENT,
                      errors=(409,)),
    },
    "/keys": {
        "get": _op("listKeys", "API keys: the caller's; admins all or ?user=", "keys",
                   params=[_q("user", {"type": "string"}, "only this user's keys"),
                           _q("tenant", {"type": "string"}, "only keys of this tenant")],
                   ok={200: ("Keys", _list("ApiKey"))}),
        "post": _op("createKey", "Create an API key (the secret is shown once)", "keys", body="KeyCreate",
                    ok={201: ("Created, with its secret", _json(_ref("ApiKeyCreated")))}, errors=(409,),
                    headers={201: CREATED}),
    },
    "/keys/{key_id}": {
        "parameters": _path("key_id"),
        "get": _op("getKey", "One API key (never its secret)", "keys", ok={200: ("The key", _json(_ref("ApiKey")))}),
    },
    "/keys/{key_id}/revoke": {
        "parameters": _path("key_id"),
        "post": _op("revokeKey", "Revoke an API key", "keys", ok={200: ("Revoked", _json(_ref("ApiKey")))},
                    errors=(409,)),
    },
    "/me/secrets": {
        "get": _op("listMySecrets", "The names of the caller's secrets (never the values)", "secrets",
                   ok={200: ("Secrets", _list("SecretInfo"))}),
    },
    "/me/secrets/{secret}": {
        "parameters": _path("secret"),
        "put": _op("putMySecret", "Set or replace one of the caller's secrets (write-only)", "secrets",
                   body="SecretValue", ok=NO_CONTENT),
        "delete": _op("deleteMySecret", "Delete one of the caller's secrets", "secrets", ok=NO_CONTENT),
    },
    "/keys/{key_id}/secrets": {
        "parameters": _path("key_id"),
        "get": _op("listKeySecrets", "The names of a key's secrets (own keys; admins any)", "secrets",
                   ok={200: ("Secrets", _list("SecretInfo"))}),
    },
    "/keys/{key_id}/secrets/{secret}": {
        "parameters": _path("key_id", "secret"),
        "put": _op("putKeySecret", "Set or replace a secret of a key (write-only)", "secrets", body="SecretValue",
                   ok=NO_CONTENT),
        "delete": _op("deleteKeySecret", "Delete a secret of a key", "secrets", ok=NO_CONTENT),
    },
    "/tenants/{name}/secrets": {
        "parameters": _path("name"),
        "get": _op("listTenantSecrets", "The names of a tenant's fallback secrets (admins; the tenant's members)",
                   "secrets", ok={200: ("Secrets", _list("SecretInfo"))}),
    },
    "/tenants/{name}/secrets/{secret}": {
        "parameters": _path("name", "secret"),
        "put": _op("putTenantSecret", "Set or replace a tenant's fallback secret (admins; write-only)", "secrets",
                   body="SecretValue", ok=NO_CONTENT),
        "delete": _op("deleteTenantSecret", "Delete a tenant's fallback secret (admins)", "secrets", ok=NO_CONTENT),
    },
    "/documents": {
        "get": _op("listDocuments", "Config documents (without content)", "documents",
                   params=[_q("tenant", {"type": "string"}, "only this tenant"),
                           _q("include_deleted", {"type": "boolean", "default": False}, "list deleted ones too")],
                   ok={200: ("Documents", _list("DocumentSummary"))}),
        "post": _op("createDocument", "Create a document (JSON or YAML)", "documents", body=_JSON_DOC_BODY,
                    ok={201: ("Created", DOC_OUT)}, errors=(409,), headers={201: {**ETAG, **CREATED}}),
    },
    "/documents/validate": {
        "post": _op("validateDocument", "Dry run: would this document be accepted?", "documents",
                    body=_JSON_DOC_BODY, ok={200: ("The verdict", _json(_ref("Validation")))}),
    },
    "/documents/{tenant}/{name}": {
        "parameters": DOC_PATH,
        "get": _op("getDocument", "One document (YAML with Accept: application/yaml)", "documents",
                   ok={200: ("The document", DOC_OUT)}, headers={200: ETAG}),
        "put": _op("putDocument", "Replace (or create) a document; If-Match guards against lost updates",
                   "documents", params=BASE_VERSION, body=_JSON_DOC_BODY,
                   ok={200: ("Saved", DOC_OUT), 201: ("Created", DOC_OUT)}, errors=(409,),
                   headers={200: ETAG, 201: {**ETAG, **CREATED}}),
        "delete": _op("deleteDocument", "Delete a document (restorable by rollback)", "documents",
                      params=BASE_VERSION, ok=NO_CONTENT, errors=(409,)),
    },
    "/documents/{tenant}/{name}/versions": {
        "parameters": DOC_PATH,
        "get": _op("listVersions", "A document's history, newest first", "documents",
                   ok={200: ("Versions", _list("VersionSummary"))}),
    },
    "/documents/{tenant}/{name}/versions/{version}": {
        "parameters": _path("tenant", "name", "version"),
        "get": _op("getVersion", "One version with its content", "documents",
                   ok={200: ("The version", _json(_ref("Version")))}),
    },
    "/documents/{tenant}/{name}/diff": {
        "parameters": DOC_PATH,
        "get": _op("diffVersions", "Unified diff of two versions' YAML", "documents",
                   params=[_q("a", {"type": "integer", "minimum": 1, "maximum": INT64_MAX}, "first version",
                              required=True),
                           _q("b", {"type": "integer", "minimum": 1, "maximum": INT64_MAX}, "second version",
                              required=True)],
                   ok={200: ("The diff", _json(_ref("Diff")))}),
    },
    "/documents/{tenant}/{name}/rollback": {
        "parameters": DOC_PATH,
        "post": _op("rollbackDocument", "Restore a version as a new version (also un-deletes)", "documents",
                    body="Rollback", ok={200: ("Restored", DOC_OUT)}, errors=(409,), headers={200: ETAG}),
    },
    "/import": {
        "post": _op("importDocuments", "Import documents (ours or Unla's): all or nothing", "transfer",
                    params=[_q("format", {"type": "string", "enum": ["auto", "mcpgw", "unla"], "default": "auto"},
                               "the documents' format")],
                    body={"required": True, "content": {
                        "application/yaml": {"schema": {"type": ["object", "array"]}},
                        "application/json": {"schema": {"type": ["object", "array"]}}}},
                    ok={200: ("Imported", _json(_ref("ImportResult")))}, errors=(409,)),
    },
    "/import/openapi": {
        "post": _op("importOpenapi", "Turn an OpenAPI/Swagger spec into a document (dry_run to preview)",
                    "transfer", body="OpenApiImport",
                    ok={200: ("Previewed or replaced", _json(_ref("OpenApiImportResult"))),
                        201: ("Created", _json(_ref("OpenApiImportResult")))}, errors=(409,)),
    },
    "/export": {
        "get": _op("export", "Documents as one YAML stream", "transfer",
                   params=[_q("tenant", {"type": "string"}, "only this tenant"),
                           _q("name", {"type": "string"}, "only this document (needs tenant)"),
                           _q("format", {"type": "string", "enum": ["mcpgw", "unla"], "default": "mcpgw"},
                              "the output format")],
                   ok={200: ("YAML documents separated by ---",
                             {"application/yaml": {"schema": {"description": "a YAML stream of documents"}}})}),
    },
    "/chats": {
        "get": _op("listChats", "Chat sessions (own; admins all or ?user=)", "chats",
                   params=[_q("user", {"type": "string"}, "only this user's chats (admins)")],
                   ok={200: ("Chats", _list("Chat"))}),
        "post": _op("createChat", "Start a chat session", "chats", body="ChatCreate",
                    ok={201: ("Created", _json(_ref("Chat")))}, headers={201: CREATED}),
    },
    "/chats/{chat_id}": {
        "parameters": _path("chat_id"),
        "get": _op("getChat", "One chat session", "chats", ok={200: ("The chat", _json(_ref("Chat")))}),
        "patch": _op("updateChat", "Rename a chat or change its settings", "chats", body="ChatUpdate",
                     ok={200: ("Updated", _json(_ref("Chat")))}),
        "delete": _op("deleteChat", "Delete a chat and its messages", "chats", ok=NO_CONTENT),
    },
    "/chats/{chat_id}/messages": {
        "parameters": _path("chat_id"),
        "get": _op("listChatMessages", "A chat's messages in order", "chats",
                   ok={200: ("Messages", _list("ChatMessage"))}),
        "post": _op("addChatMessage", "Append a message", "chats", body="ChatMessageCreate",
                    ok={201: ("Added", _json(_ref("ChatMessage")))}),
    },
    "/audit": {
        "get": _op("audit", "Tool calls, newest first, filtered", "audit", params=AUDIT_PARAMS,
                   ok={200: ("Records", _list("AuditRecord"))}),
    },
    "/status": {
        "get": _op("status", "Config revision and counts", "status", ok={200: ("Status", _json(_ref("Status")))}),
    },
    "/openapi.json": {
        "get": _op("openapi", "This document", "status", ok={200: ("OpenAPI 3.1", _json({"type": "object"}))},
                   public=True),
    },
}


def _link(op_id: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": op_id, "parameters": parameters}


#: (path, method, status) → links from a created object to what may be done with it next.
LINKS = {
    ("/users", "post", "201"): {f"{op}User": _link(f"{op}User", name="$response.body#/name")
                                for op in ("get", "update", "delete")},
    ("/tenants", "post", "201"): {f"{op}Tenant": _link(f"{op}Tenant", name="$response.body#/name")
                                  for op in ("get", "update", "delete")},
    ("/keys", "post", "201"): {"getKey": _link("getKey", key_id="$response.body#/id"),
                               "revokeKey": _link("revokeKey", key_id="$response.body#/id")},
    ("/documents", "post", "201"): {
        op: _link(op, tenant="$response.body#/tenant", name="$response.body#/name")
        for op in ("getDocument", "putDocument", "deleteDocument", "listVersions")},
    ("/chats", "post", "201"): {op: _link(op, chat_id="$response.body#/id")
                                for op in ("getChat", "updateChat", "deleteChat", "listChatMessages",
                                           "addChatMessage")},
}
for (_path, _method, _status), _links in LINKS.items():
    PATHS[_path][_method]["responses"][_status]["links"] = _links


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``/api/v1``."""
    from mcpgw_sdk import __version__

    return {
        "openapi": "3.1.0",
        "info": {"title": "mcpgw management API", "version": __version__,
                 "description": "Users, tenants, API keys, config documents and their history, import/export, "
                                "chat history and the audit log of an mcpgw gateway."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearerAuth": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {**INPUTS, **OUTPUTS},
        },
    }


@bp.get("/openapi.json")
def openapi():
    """The OpenAPI document of this API."""
    return jsonify(document())
