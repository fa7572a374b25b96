"""What the Versions page shows: the history as rows without ``None``, and the versions it preselects."""

from __future__ import annotations

from typing import Any

from mcpgw_sdk.records import Version


def history_rows(versions: list[Version]) -> list[dict[str, Any]]:
    """One row per version, newest first; an empty cell is ``""`` (a table would show ``None``)."""
    return [{"version": v.version, "action": v.action, "author": v.author or "",
             "when": v.created_at.strftime("%Y-%m-%d %H:%M:%S") if v.created_at else "",
             "reverted from": "" if v.reverted_from is None else str(v.reverted_from)} for v in versions]


def restore_choices(versions: list[Version]) -> list[int]:
    """The versions worth restoring, newest first: every version with content except the current one.

    The first is the one to preselect: the version before the current one, or, for a deleted
    document, the last version it had.
    """
    if not versions:
        return []
    current = versions[0]
    return [v.version for v in versions if v.content is not None
            and not (current.content is not None and v.version == current.version)]
