"""Who may save what: the one check every document write path runs with the acting user.

Starting processes on the gateway host is an operator's privilege. A document
with a ``type: stdio`` upstream may be saved by an admin, by code running on the
host without an acting user (the CLI, the SDK: they already have the shell), or
by a member when its ``command`` is in the operator's ``stdio_commands``
allow-list. The store calls :func:`check_save` before it writes anything; the
console and the API's dry run call :func:`violations` to show the same problems
next to the field.

Matching rule of ``stdio_commands``: each entry is an absolute, normalised path
(``/usr/local/bin/mcp-files``) or a bare program name (``uvx``). A command is
allowed when it is *string-equal* to an entry: no globbing, no normalisation,
``python`` does not match ``/usr/bin/python`` nor the reverse. A bare name is
looked up in the fixed ``PATH`` of stdio children, or in the ``PATH`` the
document's ``env`` sets, which a member's entry may not (:data:`LOADER_ENV`). ``args`` stay the member's to choose, so allow-listing an
interpreter or shell (``sh``, ``python``, ``node``, ``npx``, ``uvx``…) allows
any code. A member's allow-listed entry may not set ``env`` names that make a
program load other code (:data:`LOADER_ENV`); this list is best effort.

>>> from mcpgw_sdk.records import User
>>> doc = {"name": "d", "tenant": "t", "mcpServers": [{"name": "sh", "type": "stdio", "command": "/bin/sh"}]}
>>> violations(doc, actor=User(id=1, name="bob", role="member", active=True), allowed=())
["t/d: mcpServers[0].command: stdio upstream 'sh' would run '/bin/sh' on the gateway host; only admins \
may save stdio upstreams (or an operator allow-lists the command in MCPGW_STDIO_COMMANDS)"]
>>> violations(doc, actor=None, allowed=())
[]
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

from .config_model import DEFAULT_TENANT
from .errors import ConfigError, Forbidden
from .records import ADMIN, User

#: Environment names (exact, or prefixes ending in ``*``) a member's stdio entry may not set: each makes
#: a program run code the document chooses, or find other programs than the operator allow-listed.
LOADER_ENV = ("PATH", "LD_*", "DYLD_*", "PYTHON*", "NODE_OPTIONS", "NODE_PATH", "PERL5*", "PERLLIB", "RUBYOPT",
              "RUBYLIB", "BASH_ENV", "ENV", "GCONV_PATH", "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS",
              "GIT_*", "NPM_CONFIG_*", "npm_config_*", "UV_*", "PIP_*", "HOME", "XDG_CONFIG_HOME")


def allowed_commands(value: Iterable[str] | None = None) -> tuple[str, ...]:
    """The ``stdio_commands`` allow-list, checked: each entry an absolute normalised path or a bare name."""
    from .settings import resolve

    entries = tuple(value if value is not None else resolve().stdio_commands)
    for entry in entries:
        absolute = entry.startswith("/") and posixpath.normpath(entry) == entry
        if not (absolute or (entry and "/" not in entry and entry not in (".", ".."))):
            raise ConfigError(f"MCPGW_STDIO_COMMANDS: {entry!r} is neither an absolute normalised path "
                              "nor a bare program name")
    return entries


def _loader_env(name: str) -> bool:
    return any(name.startswith(p[:-1]) if p.endswith("*") else name == p for p in LOADER_ENV)


def violations(content: dict[str, Any], *, actor: User | None, allowed: Iterable[str] | None = None) -> list[str]:
    """What ``actor`` may not save in ``content`` (``tenant/name: field: reason`` lines; empty when allowed).

    ``actor`` ``None`` is code on the host (CLI, SDK) and admins may save anything; ``allowed`` defaults
    to the ``stdio_commands`` setting.
    """
    if actor is None or actor.role == ADMIN:
        return []
    servers = content.get("mcpServers") or []
    if not any(isinstance(s, dict) and s.get("type") == "stdio" for s in servers):
        return []
    commands = set(allowed_commands(allowed))
    label = f"{content.get('tenant', DEFAULT_TENANT)}/{content.get('name')}"
    problems = []
    for i, server in enumerate(servers):
        if not isinstance(server, dict) or server.get("type") != "stdio":
            continue
        command = server.get("command")
        if command not in commands:
            problems.append(f"{label}: mcpServers[{i}].command: stdio upstream {server.get('name')!r} would run "
                            f"{str(command)[:200]!r} on the gateway host; only admins may save stdio upstreams "
                            "(or an operator allow-lists the command in MCPGW_STDIO_COMMANDS)")
            continue
        for env_name in sorted(server.get("env") or {}):
            if _loader_env(str(env_name)):
                problems.append(f"{label}: mcpServers[{i}].env.{str(env_name)[:100]}: members may not set this "
                                "variable on a stdio upstream (it changes which code runs)")
    return problems


def check_save(contents: Iterable[dict[str, Any]], *, actor: User | None) -> None:
    """Raise :class:`~mcpgw_sdk.errors.Forbidden` naming every field ``actor`` may not save in ``contents``."""
    problems = [p for content in contents for p in violations(content, actor=actor)]
    if problems:
        raise Forbidden(problems[0] if len(problems) == 1 else f"{len(problems)} problems: " + "; ".join(problems))
