"""What the Servers page shows: every served prefix, its endpoints and ready-to-paste client configs,
and the switch that disables or enables a prefix (saved as a new version of its document)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import requests

from mcpgw_sdk.config_model import Router
from mcpgw_sdk.documents import normalize_prefix
from mcpgw_sdk.errors import ConflictError, Forbidden, NotFound
from mcpgw_sdk.records import Document, User
from mcpgw_sdk.store import Store

from .access import check_tenant
from .editing import FieldError, SaveOutcome, save


@dataclass(frozen=True)
class Served:
    """One router of a document: the prefix it serves and the server(s) behind it."""

    tenant: str
    document: str
    prefix: str
    servers: tuple[str, ...]
    auth: str = "none"
    disabled: bool = False
    version: int = 0  # the document's version this was read from: the base of a toggle


def served_prefixes(documents: list[Document]) -> list[Served]:
    """Every router of the documents, ordered by prefix."""
    items = []
    for doc in documents:
        for router in doc.content.get("routers") or []:
            names = router.get("servers") or ([router["server"]] if router.get("server") else [])
            auth = Router.from_dict(router).mode
            items.append(Served(doc.tenant, doc.name, str(router.get("prefix", "")), tuple(names), auth,
                                router.get("disabled") is True, doc.version))
    return sorted(items, key=lambda s: s.prefix)


def set_disabled(store: Store, user: User, item: Served, disabled: bool) -> SaveOutcome:
    """Disable (or enable) ``item``'s router as a new version of its document, based on ``item.version``.

    Nothing is written when the user may not edit the tenant (an error), or when the document changed
    since ``item`` was read (the outcome carries the conflict, as in the editor).
    """
    try:
        check_tenant(user, item.tenant)
    except Forbidden as exc:
        return SaveOutcome(errors=[FieldError("tenant", str(exc).split(": ", 1)[-1])])
    try:
        current = store.get_document(item.tenant, item.document)
    except NotFound:
        return SaveOutcome(conflict=ConflictError(f"{item.tenant}/{item.document} was deleted meanwhile",
                                                  base_version=item.version, current_version=None))
    if current.version != item.version:
        return SaveOutcome(conflict=ConflictError(
            f"{item.tenant}/{item.document} is at version {current.version}",
            base_version=item.version, current_version=current.version))
    content = current.content
    wanted = normalize_prefix(item.prefix)
    router = next((r for r in content.get("routers") or []
                   if normalize_prefix(str(r.get("prefix", ""))) == wanted), None)
    if router is None:
        return SaveOutcome(errors=[FieldError("routers", f"no router with prefix {wanted!r} any more")])
    if disabled:
        router["disabled"] = True
    else:
        router.pop("disabled", None)
    return save(store, content, user=user, base_version=item.version)


def endpoints(gateway_url: str, prefix: str) -> dict[str, str]:
    """The Streamable HTTP and SSE URLs of ``prefix``."""
    base = gateway_url.rstrip("/") + "/" + prefix.strip("/")
    return {"Streamable HTTP": base + "/mcp", "SSE": base + "/sse"}


def server_key(prefix: str) -> str:
    """A client-config name for a prefix: ``/acme/users`` → ``acme-users``."""
    return prefix.strip("/").replace("/", "-") or "mcpgw"


#: What an ``apikey`` router's snippets hold in place of a key: made with ``mcpgw key create`` or the console.
KEY_PLACEHOLDER = "<your mcpgw API key>"


def client_configs(gateway_url: str, prefix: str, *, auth: str = "none") -> dict[str, tuple[str, str]]:
    """Ready-to-paste configs per client: name → (language, text).

    Claude Desktop starts local (stdio) servers only, so it reaches the gateway through ``mcp-remote``;
    Cursor and VS Code speak Streamable HTTP themselves. With ``auth="apikey"`` each snippet sends the key
    as ``Authorization: Bearer …`` (``oauth2`` routers need nothing: the clients sign in themselves).
    """
    urls = endpoints(gateway_url, prefix)
    mcp_url, sse_url = urls["Streamable HTTP"], urls["SSE"]
    key = server_key(prefix)
    bearer = f"Bearer {KEY_PLACEHOLDER}"
    claude: dict[str, Any] = {"command": "npx", "args": ["-y", "mcp-remote", mcp_url]}
    cursor: dict[str, Any] = {"url": mcp_url}
    vscode: dict[str, Any] = {"type": "http", "url": mcp_url}
    if auth == "apikey":
        # mcp-remote's documented form: no space inside args (Windows quoting), the value from env.
        claude["args"] += ["--header", "Authorization:${MCPGW_AUTH}"]
        claude["env"] = {"MCPGW_AUTH": bearer}
        cursor["headers"] = vscode["headers"] = {"Authorization": bearer}
        python = (  # the official client takes no headers; ours does
            "from mcpgw_sdk.client import McpClient\n\n"
            f"with McpClient({mcp_url!r}, headers={{'Authorization': {bearer!r}}}) as client:\n"
            "    print([tool['name'] for tool in client.list_tools()])\n"
        )
    else:
        python = (
            "import asyncio\n\nimport mcp\n\n\n"
            "async def main():\n"
            f"    async with mcp.Client({mcp_url!r}) as client:\n"
            "        tools = await client.list_tools()\n"
            "        print([tool.name for tool in tools.tools])\n\n\n"
            "asyncio.run(main())\n"
        )
    return {
        "Claude Desktop (claude_desktop_config.json)": ("json", json.dumps({"mcpServers": {key: claude}}, indent=2)),
        "Cursor (.cursor/mcp.json)": ("json", json.dumps({"mcpServers": {key: cursor}}, indent=2)),
        "VS Code (.vscode/mcp.json)": ("json", json.dumps({"servers": {key: vscode}}, indent=2)),
        "Python (mcp)": ("python", python),
        "SSE clients": ("text", sse_url),
    }


def fetch_readyz(gateway_url: str, *, timeout: float = 3.0) -> dict[str, Any]:
    """The gateway's ``/readyz`` JSON, or ``{"reachable": False, "error": …}`` when it cannot be read."""
    url = gateway_url.rstrip("/") + "/readyz"
    try:
        resp = requests.get(url, timeout=timeout)
    except requests.RequestException as exc:
        return {"reachable": False, "error": f"cannot reach {url}: {exc.__class__.__name__}"}
    try:
        data = resp.json()
    except ValueError:
        return {"reachable": True, "ready": False, "status": resp.status_code, "error": resp.text[:200]}
    if not isinstance(data, dict):
        data = {"body": data}
    data.setdefault("ready", resp.status_code == 200)
    data["reachable"] = True
    data["status"] = resp.status_code
    return data


def document_errors(readyz: dict[str, Any], tenant: str, name: str) -> list[str]:
    """The errors ``/readyz`` reports for one document (its format: a list or a map of documents)."""
    found: list[str] = []
    ident = f"{tenant}/{name}"
    raw = readyz.get("documents_with_errors") or readyz.get("errors") or {}
    if isinstance(raw, dict):
        for key, value in raw.items():
            if key == ident or key == name:
                found.extend(_as_list(value.get("errors", value) if isinstance(value, dict) else value))
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict):
                doc = item.get("document") or f"{item.get('tenant')}/{item.get('name')}"
                if doc == ident and (item.get("errors") or item.get("error")):
                    found.extend(_as_list(item.get("errors") or item.get("error")))
            elif isinstance(item, str) and item.startswith(ident + ":"):
                found.append(item)
    return found


def _as_list(value: Any) -> list[str]:
    if not value:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def state_of(readyz: dict[str, Any], tenant: str, name: str, prefix: str | None = None,
             *, disabled: bool = False) -> str:
    """One word for a document's state at the gateway: unreachable, error, serving, disabled or not ready."""
    if disabled:  # a fact of the config, whatever the gateway says
        served = readyz.get("reachable") and prefix in (readyz.get("routes") or [])
        return "disabled (the gateway stops serving it within seconds)" if served else "disabled"
    if not readyz.get("reachable"):
        return "gateway unreachable"
    if document_errors(readyz, tenant, name):
        return "error (serving last good version)"
    if not readyz.get("ready"):
        return "gateway not ready"
    routes = readyz.get("routes")
    if isinstance(routes, list) and prefix is not None and prefix not in routes:
        return "not served yet (the gateway reloads within seconds)"
    return "serving"
