"""The documentation covers every setting and every command (a test fails when one is undocumented)."""

from __future__ import annotations

import re

import click

from mcpgw_sdk import settings
from mcpgw_sdk.cli import _load_plugins, cli
from tests.helpers import ROOT

DOCS = ROOT / "docs"


def _commands(group: click.Group, path: tuple[str, ...] = ("mcpgw",)):
    for name, command in sorted(group.commands.items()):
        here = path + (name,)
        yield here, command
        if isinstance(command, click.Group):
            yield from _commands(command, here)


def _section(text: str, title: str) -> str | None:
    """The text under the heading ``### `title``` up to the next heading."""
    match = re.search(rf"^#+ `{re.escape(title)}`\s*$(.*?)(?=^#|\Z)", text, re.M | re.S)
    return match.group(1) if match else None


def _all_commands():
    _load_plugins()
    return list(_commands(cli))


def test_every_setting_is_documented_with_its_environment_variable():
    text = (DOCS / "settings.md").read_text()
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines() if line.startswith("| `")}
    missing = [s.name for s in settings.SETTINGS.values() if s.name not in rows or s.env not in rows[s.name]]
    assert not missing, f"docs/settings.md lacks these settings (with their MCPGW_* variable): {missing}"


def test_every_command_is_documented():
    text = (DOCS / "cli.md").read_text()
    missing = []
    for path, command in _all_commands():
        title = " ".join(path)
        if isinstance(command, click.Group):
            if f"`{title} " not in text:
                missing.append(title)
        elif _section(text, title) is None:
            missing.append(title)
    assert not missing, f"docs/cli.md has no section for: {missing}"


def test_every_option_of_every_command_is_documented():
    text = (DOCS / "cli.md").read_text()
    missing = []
    for path, command in _all_commands():
        if isinstance(command, click.Group):
            continue
        section = _section(text, " ".join(path)) or ""
        for param in command.params:
            if isinstance(param, click.Option) and param.name != "db":
                flag = max(param.opts, key=len)
                if flag not in section:
                    missing.append(f"{' '.join(path)} {flag}")
    assert not missing, f"docs/cli.md does not mention: {missing}"


def test_every_option_has_help():
    missing = [f"{' '.join(path)} {max(p.opts, key=len)}" for path, command in _all_commands()
               for p in command.params if isinstance(p, click.Option) and not p.help]
    assert not missing, f"options without help=: {missing}"


def test_every_database_option_names_the_environment_variable():
    for path, command in _all_commands():
        if isinstance(command, click.Group):
            continue
        names = [p.name for p in command.params]
        assert "db" in names, f"{' '.join(path)} does not take --db"


def test_every_workspace_and_builder_method_is_documented():
    from mcpgw_sdk import builders, workspace

    text = (DOCS / "sdk.md").read_text()
    classes = [workspace.Workspace, builders.DocumentBuilder, builders.ToolBuilder, builders.RestServerBuilder,
               builders.McpServerBuilder, builders.RouterBuilder, builders.PromptBuilder]
    undocumented, missing = [], []
    for cls in classes:
        for name, member in vars(cls).items():
            if name.startswith("_") or not callable(member) and not isinstance(member, property):
                continue
            if not (getattr(member, "__doc__", None) or "").strip():
                undocumented.append(f"{cls.__name__}.{name}")
            if not re.search(rf"\b{name}\b", text):
                missing.append(f"{cls.__name__}.{name}")
    assert not undocumented, f"no docstring: {undocumented}"
    assert not missing, f"docs/sdk.md does not mention: {missing}"
