"""MRTR (2026-07-28 multi-round-trip requests) in the modern core: retries in, ``input_required`` out.

IO-free. :func:`take_retry` runs before a ``tools/call``/``prompts/get``/``resources/read`` is
served: it checks ``inputResponses`` and opens the gateway's sealed ``requestState``
(:mod:`.sealing`), putting the client's responses, the upstream's own state and the upstream the
state names on the call context. :func:`relay` runs on the result: an ``input_required`` answer
keeps its ``inputRequests`` (every kind must be one the client declared, else -32021) and gets
the gateway's sealed ``requestState`` wrapping the upstream's and naming the upstream.
"""

from __future__ import annotations

from typing import Any

from . import sealing
from .jsonrpc import INTERNAL_ERROR, INVALID_PARAMS, JsonRpcError

MISSING_CLIENT_CAPABILITY = -32021
#: Methods that may answer ``input_required`` and be retried with ``inputResponses``/``requestState``.
METHODS = sealing.MRTR_METHODS
#: ``inputRequests`` methods and the client capability each needs.
INPUT_KINDS = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}


def take_retry(route: Any, principal: Any, method: str, params: dict[str, Any], ctx: Any) -> None:
    """Check a retry's ``inputResponses`` and open its ``requestState`` onto ``ctx``; raise -32602 when refused.

    A retry may carry ``inputResponses`` without any ``requestState`` (nothing to open: the responses
    go to the backend as they are). ``inputResponses: null`` counts as absent.
    """
    if method not in sealing.MRTR_METHODS:
        return
    responses = params.get("inputResponses")
    if responses is not None and not isinstance(responses, dict):
        raise JsonRpcError(INVALID_PARAMS, f"{method}: params.inputResponses must be an object")
    ctx.input_responses = responses
    token = params.get("requestState")
    if token is None:
        return
    opened = sealing.current().open(token, principal=sealing.principal_id(principal), prefix=route.prefix,
                                    method=method, params=params)
    if opened.upstream is not None and method == "tools/call":
        entry = route.tools.get(params.get("name"))
        if entry is not None and getattr(entry.backend, "name", None) != opened.upstream:
            raise sealing.refused(f"it names upstream {opened.upstream}, which no longer serves this tool")
    ctx.request_state = opened.inner
    ctx.state_upstream = opened.upstream


def relay(route: Any, principal: Any, method: str, params: dict[str, Any], ctx: Any, declared: dict[str, Any],
          result: dict[str, Any]) -> dict[str, Any]:
    """``result`` for the modern client: as is when complete, else the relayed ``input_required`` answer."""
    if result.get("resultType") != "input_required":
        return result
    if method not in sealing.MRTR_METHODS:
        raise JsonRpcError(INTERNAL_ERROR, f"a backend answered {method} with input_required, which only "
                           "tools/call, prompts/get and resources/read may")
    requests = result.get("inputRequests")
    if requests is not None and not isinstance(requests, dict):
        raise JsonRpcError(INTERNAL_ERROR, f"{method}: a backend answered input_required with malformed inputRequests")
    missing: dict[str, Any] = {}
    for key, request in (requests or {}).items():
        kind = INPUT_KINDS.get(request.get("method")) if isinstance(request, dict) else None
        if kind is None:
            raise JsonRpcError(INTERNAL_ERROR, f"{method}: a backend asked for input {key!r} of an unknown kind")
        if kind not in declared:
            missing[kind] = {}
    if missing:
        raise JsonRpcError(MISSING_CLIENT_CAPABILITY,
                           f"{method} needs client capabilities the request did not declare: {', '.join(missing)}",
                           {"requiredCapabilities": missing})
    inner = result.get("requestState")
    out: dict[str, Any] = {"resultType": "input_required"}
    if requests:
        out["inputRequests"] = requests
    out["requestState"] = sealing.current().seal(
        principal=sealing.principal_id(principal), prefix=route.prefix, method=method, params=params,
        upstream=getattr(ctx, "input_upstream", None), inner=inner if isinstance(inner, str) else None)
    meta = result.get("_meta")
    if isinstance(meta, dict) and meta:
        out["_meta"] = meta
    return out
