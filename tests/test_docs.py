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


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S)


def _docs_and_readme() -> dict[str, str]:
    found = {path.name: path.read_text() for path in sorted(DOCS.glob("*.md"))}
    found["README.md"] = (ROOT / "README.md").read_text()
    return found


def test_docs_state_the_mcp_servers_policy_default_the_config_model_applies():
    from mcpgw_sdk.documents import validate

    content = validate({"name": "x", "mcpServers": [{"name": "m", "type": "stdio", "command": "true"}]})
    default = content["mcpServers"][0]["policy"]
    assert default == "onDemand"
    texts = _docs_and_readme()
    assert "`onStart` or `onDemand` (default)" in texts["config-format.md"]
    assert f"# {default} (default" in texts["upstreams.md"]
    wrong = [name for name, text in texts.items() if re.search(r"onStart \(default", text)]
    assert not wrong, f"these say onStart is the default: {wrong}"


def test_readme_states_the_demo_tenants_prefix_the_store_gives_it(tmp_path):
    from gateway_server.demo.run import demo_document
    from mcpgw_sdk.opening import open_store

    store = open_store(f"sqlite:///{tmp_path / 'readme.db'}", check=False)
    try:
        store.upgrade()
        demo = demo_document("http://127.0.0.1:9")
        store.save_document(demo, author="test")
        prefix = store.get_tenant(demo["tenant"]).prefix
        # The README's example: a /default/users prefix fits the demo's tenant.
        store.save_document({"name": "users", "tenant": "default", "routers": [{"prefix": "/default/users",
                                                                               "server": "u"}],
                             "servers": [{"name": "u"}]}, author="test")
    finally:
        store.close()
    readme = (ROOT / "README.md").read_text()
    assert f"The demo's tenant `{demo['tenant']}` is the catch-all tenant\nwith the prefix `{prefix}`" in readme
    assert demo["routers"][0]["prefix"] + "/mcp" in readme


def test_gunicorn_examples_set_what_gunicorn_does_not_pass_on():
    """``-b`` is gunicorn's alone: a non-loopback bind needs MCPGW_HOST; several workers need Redis."""
    checked = 0
    for name, text in _docs_and_readme().items():
        for block in _code_blocks(text):
            if "gunicorn" not in block or "gateway_server.wsgi:app" not in block:
                continue
            checked += 1
            bind = re.search(r"-b (\S+):\d+", block)
            if bind and bind.group(1) not in ("127.0.0.1", "localhost", "[::1]"):
                assert f"MCPGW_HOST={bind.group(1)}" in block, f"{name}: {block}"
            workers = re.search(r"-w (\d+)", block)
            if workers and int(workers.group(1)) > 1:
                assert "MCPGW_REDIS_URL" in block, f"{name}: {block}"
    assert checked >= 3
