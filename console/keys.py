"""What the API-keys form offers: the servers and tools a key may be restricted to, and its expiry."""

from __future__ import annotations

from mcpgw_sdk.store import Store

#: Label → days until the key expires (None: never), as ``mcpgw key create --expires-days``.
EXPIRY = {"Never": None, "7 days": 7, "30 days": 30, "90 days": 90, "1 year": 365}


def scope_choices(store: Store, tenant: str) -> tuple[list[str], list[str]]:
    """The server names (REST and upstream MCP) and REST tool names of ``tenant``'s documents, sorted.

    Upstream MCP servers' tools are not known before they connect: the form accepts typed names too.
    """
    servers: set[str] = set()
    tools: set[str] = set()
    if not tenant:
        return [], []
    for doc in store.list_documents(tenant=tenant):
        content = doc.content or {}
        for server in (content.get("servers") or []) + (content.get("mcpServers") or []):
            if server.get("name"):
                servers.add(server["name"])
        for tool in content.get("tools") or []:
            if tool.get("name"):
                tools.add(tool["name"])
    return sorted(servers), sorted(tools)


def scope_text(servers: tuple[str, ...] | list[str], tools: tuple[str, ...] | list[str]) -> str:
    """``servers: a, b · tools: x`` for a key's restrictions, ``""`` when it has none."""
    parts = [f"{label}: {', '.join(values)}" for label, values in (("servers", servers), ("tools", tools)) if values]
    return " · ".join(parts)
