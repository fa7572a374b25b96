"""What every route module shares: the store, the caller and their access, bodies and record encoding."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timezone
from typing import Any

import yaml
from flask import current_app, g, request
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

from mcpgw_sdk.access import Access
from mcpgw_sdk.errors import ConfigError, NotFound
from mcpgw_sdk.names import text_errors
from mcpgw_sdk.records import User
from mcpgw_sdk.store import Store

JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


def store() -> Store:
    """The store this app serves.

    Routes behind login may use every part: only a store with accounts lets anyone log in (a ``yaml://``
    directory is a config store only, so its API answers nothing past ``/auth/login``).
    """
    return current_app.extensions["mcpgw"]["store"]


def caller() -> User:
    """The authenticated user of this request."""
    return g.user


def access() -> Access:
    """What the caller may do (:mod:`mcpgw_sdk.access`); its refusals become 403/404 through the app's error table."""
    return Access(caller())


NESTED = "the body is nested too deeply"
_URL_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def check_request_text() -> None:
    """400 when the path or a query parameter holds a control character or a lone surrogate.

    No name may hold one (:mod:`mcpgw_sdk.names`), so such a request can only be a probe; refusing
    it here keeps it away from the database (PostgreSQL refuses NUL outright).
    """
    for what, text in (("the path", request.path),
                       *(("a query parameter", f"{k}={v}") for k, v in request.args.items(multi=True))):
        if _URL_CONTROL.search(text):
            raise BadRequest(f"{what} holds a control character")


def _yaml_load(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadRequest(f"the body is not valid YAML: {exc}") from None
    except RecursionError:
        raise BadRequest(NESTED) from None


def body_kind() -> str:
    """``json`` or ``yaml`` from the Content-Type (missing counts as JSON); 415 for anything else."""
    mimetype = request.mimetype or "application/json"
    if mimetype in JSON_TYPES:
        return "json"
    if mimetype in YAML_TYPES:
        return "yaml"
    raise UnsupportedMediaType(f"Content-Type {mimetype!r} is not application/json or application/yaml")


def body_text() -> str:
    """The raw request body as UTF-8 text (400 when it is not)."""
    try:
        return request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8 text") from None


def any_body() -> Any:
    """The request body parsed as JSON or YAML by its Content-Type."""
    text = body_text()
    if not text.strip():
        raise BadRequest("the request body is empty")
    if body_kind() == "yaml":
        return _yaml_load(text)
    try:
        data = request.get_json(force=True, silent=True)
    except RecursionError:
        raise BadRequest(NESTED) from None
    if data is None and text.strip() != "null":
        raise BadRequest("the body is not valid JSON")
    return data


def json_body(schema_name: str) -> dict[str, Any]:
    """The JSON body, checked against the named schema of the OpenAPI document (422 naming each field)."""
    if body_kind() != "json":
        raise UnsupportedMediaType("this endpoint takes application/json")
    data = any_body()
    from .openapi import check_body

    errors = text_errors(data)
    if errors:
        raise ConfigError(errors[0], errors)
    check_body(schema_name, data)
    return data


def document_body() -> dict[str, Any]:
    """A config document from a JSON or YAML body (422 unless it is a mapping)."""
    data = any_body()
    if not isinstance(data, dict):
        raise ConfigError("the body must be one config document (a mapping)",
                          ["body: expected a mapping with name, tenant, …"])
    return data


INT64_MAX = 2**63 - 1


def check_id(value: int, what: str) -> int:
    """Raise NotFound for ids beyond what a database column can hold (they cannot exist)."""
    if value > INT64_MAX:
        raise NotFound(f"{what} {value} not found")
    return value


def arg_int(name: str, default: int | None = None, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    """An integer query parameter (400 naming it when malformed or out of range)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {name}: {raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise BadRequest(f"query parameter {name}: must be at least {minimum}")
    maximum = INT64_MAX if maximum is None else maximum
    if value > maximum:
        raise BadRequest(f"query parameter {name}: must be at most {maximum}")
    return value


def arg_bool(name: str, default: bool = False) -> bool:
    """A boolean query parameter: true/false (400 otherwise)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw.lower() in ("true", "1"):
        return True
    if raw.lower() in ("false", "0"):
        return False
    raise BadRequest(f"query parameter {name}: {raw!r} is not true or false")


def arg_datetime(name: str) -> datetime | None:
    """An ISO 8601 query parameter as an aware UTC datetime (naive values count as UTC)."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"query parameter {name}: {raw!r} is not an ISO 8601 date-time") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def arg_choice(name: str, choices: tuple[str, ...], default: str | None = None) -> str | None:
    """A query parameter restricted to ``choices`` (400 naming them otherwise)."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise BadRequest(f"query parameter {name}: {raw!r} is not one of {', '.join(choices)}")
    return raw


def iso(value: datetime | None) -> str | None:
    """A datetime as ISO 8601 with an explicit UTC offset (stored times are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat()


def encode(record: Any, *, drop: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record as a JSON-ready dict (datetimes ISO 8601, tuples as lists; ``secret_hash`` and fields marked
    ``internal``, such as a document's validation mark, never)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(record):
        if f.name in drop or f.name == "secret_hash" or f.metadata.get("internal"):
            continue
        value = getattr(record, f.name)
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out
