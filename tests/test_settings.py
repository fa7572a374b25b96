"""Settings are resolved once, at an entry point, and passed down; the CLI's flags come from the registry."""

from __future__ import annotations

import re

import click
import pytest

from mcpgw_sdk import settings
from mcpgw_sdk.cli import _load_plugins, cli
from mcpgw_sdk.errors import ConfigError
from mcpgw_sdk.settings import Settings, resolve
from tests.helpers import ROOT

#: Modules that are entry points: they may read a setting where they stand (``settings.get``).
ENTRY_POINTS = {
    "mcpgw_sdk/cli.py",
    "gateway_server/commands.py",
    "gateway_server/wsgi.py",
    "gateway_server/__main__.py",
    "gateway_server/api/commands.py",
    "gateway_server/demo/run.py",
    "console/commands.py",
    "console/ui.py",  # the console's own process: `mcpgw console` hands it its settings in MCPGW_* variables
}

#: Modules below the entry points that resolve the registry themselves, and only when their caller passed
#: nothing (``x if x is not None else resolve().x``): the public SDK and the process-wide defaults that
#: notebooks, scripts and tests use without an entry point. Everything else receives its settings.
FALLBACKS = {
    "mcpgw_sdk/opening.py": "open_store(url=None): the database_url setting",
    "mcpgw_sdk/sql/config.py": "version_retention, read per save by the store (the store takes no settings yet)",
    "mcpgw_sdk/local.py": "LocalGateway(db=None)",
    "mcpgw_sdk/policy.py": "allowed_commands(value=None): the stores check saves against stdio_commands",
    "mcpgw_sdk/secrets.py": "seal/open with key=None: the secrets_key setting",
    "mcpgw_sdk/mcp_transports.py": "StdioTransport(user=None): the stdio_user setting",
    "mcpgw_sdk/templates.py": "configure() with no limits; env() and forbidden_env() read template_env per use",
    "gateway_server/app.py": "create_app(settings=None) / Gateway(settings=None)",
    "gateway_server/backends/rest.py": "RestServer(settings=None), built outside a gateway",
    "gateway_server/backends/upstream.py": "UpstreamServer(settings=None), built outside a gateway",
    "gateway_server/backends/guard.py": "Guard() without allow-lists (the process-wide default guard)",
    "gateway_server/backends/held.py": "refusal() without limits; held_call_timeout before a gateway configured it",
    "gateway_server/backends/credentials.py": "configure(reader) without cache_ttl",
    "gateway_server/mcp/sealing.py": "install_from(store) without ttl; a core used without a gateway",
    "gateway_server/api/auth.py": "load_secret(state, explicit=None): jwt_secret / state_secret",
}

_GET = re.compile(r"(?<![\w.])settings\.get\(")
#: ``settings.resolve(`` or an import of ``resolve`` from the settings module
_RESOLVE = re.compile(r"(?<![\w.])settings\.resolve\(|^\s*from [\w.]*settings import [^\n]*\bresolve\b", re.M)


def _sources():
    for top in ("mcpgw_sdk", "gateway_server", "console"):
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text()


def _commands(group: click.Group, path: tuple[str, ...] = ("mcpgw",)):
    for name, command in sorted(group.commands.items()):
        here = path + (name,)
        if isinstance(command, click.Group):
            yield from _commands(command, here)
        else:
            yield " ".join(here), command


def _setting_options():
    """(command, option, setting) for every option that sets a registered setting (its help says ``[env: …]``)."""
    _load_plugins()
    for where, command in _commands(cli):
        for param in command.params:
            if not isinstance(param, click.Option):
                continue
            named = re.search(r"\[env: (MCPGW_[A-Z0-9_]+)", param.help or "")
            if named:
                yield where, param, settings.SETTINGS[named.group(1)[len("MCPGW_"):].lower()]


def test_precedence_is_explicit_then_environment_then_default():
    environ = {"MCPGW_PORT": "6000", "MCPGW_HOST": "0.0.0.0"}
    resolved = resolve({"port": 7000, "host": None}, environ=environ)
    assert (resolved.port, resolved.host, resolved.reload_interval) == (7000, "0.0.0.0", 2.0)
    assert resolved.get("port") == 7000
    assert resolve(environ={}).port == 5235


def test_a_malformed_variable_is_an_error_naming_it_where_the_setting_is_used():
    resolved = resolve(environ={"MCPGW_PORT": "eighty"})
    assert resolved.host == "127.0.0.1"  # the other settings still resolve
    with pytest.raises(ConfigError, match="MCPGW_PORT: "):
        resolved.port  # noqa: B018
    with pytest.raises(ConfigError, match="unknown setting"):
        resolve({"no_such_setting": 1})


def test_settings_are_immutable_and_replace_makes_a_copy():
    resolved = resolve({"port": 1}, environ={})
    with pytest.raises(AttributeError):
        resolved.port = 2  # type: ignore[misc]
    other = resolved.replace(port=2, host=None)
    assert (resolved.port, other.port, other.host) == (1, 2, "127.0.0.1")
    assert isinstance(other, Settings)
    with pytest.raises(AttributeError):
        resolved.no_such_setting  # noqa: B018


def test_every_settings_flag_is_generated_from_the_registry():
    found = {}
    for where, option, setting in _setting_options():
        note = f"{setting.env}; default {setting.default}" if "; default" in option.help else setting.env
        assert option.help == f"{setting.help} [env: {note}]", f"{where} {option.opts}"
        assert option.default is None, f"{where} {option.opts}: the registry decides the default"
        expected = {int: click.INT, float: click.FLOAT}.get(type(setting.default), click.STRING)
        assert option.type == expected, f"{where} {option.opts}"
        found[(where, max(option.opts, key=len))] = setting.name
    assert found[("mcpgw serve", "--reload-interval")] == "reload_interval"
    assert found[("mcpgw serve", "--port")] == "port"
    assert found[("mcpgw api", "--port")] == "api_port"
    assert found[("mcpgw api", "--host")] == "api_host"
    assert found[("mcpgw console", "--gateway-url")] == "gateway_url"
    assert all(found[(where, "--db")] == "database_url" for where, _ in _commands(cli))


def test_no_option_writes_a_settings_help_out_by_hand():
    helps = {s.help: s for s in settings.SETTINGS.values()}
    _load_plugins()
    for where, command in _commands(cli):
        for param in command.params:
            if isinstance(param, click.Option) and (param.help or "").split(" [env:")[0] in helps:
                assert "[env: MCPGW_" in param.help, f"{where} {param.opts}: use settings.option()"


def test_library_code_receives_its_settings_from_the_entry_point():
    deep = [f"{path}:{text.count(chr(10), 0, m.start()) + 1}" for path, text in _sources()
            if path not in ENTRY_POINTS and path != "mcpgw_sdk/settings.py" for m in _GET.finditer(text)]
    assert not deep, f"settings.get() below the entry points (take the value as a parameter instead): {deep}"
    resolving = sorted({path for path, text in _sources() if path not in ENTRY_POINTS
                        and path != "mcpgw_sdk/settings.py" and _RESOLVE.search(text)})
    unlisted = [path for path in resolving if path not in FALLBACKS]
    assert not unlisted, f"these resolve settings themselves; pass them in, or list the fallback: {unlisted}"
    stale = sorted(set(FALLBACKS) - set(resolving))
    assert not stale, f"these no longer resolve settings themselves: take them off FALLBACKS: {stale}"


def test_the_gateway_hands_its_settings_to_what_it_builds():
    from gateway_server.app import create_app
    from gateway_server.backends import held

    given = resolve({"tool_timeout": 7.0, "forward_headers": ["X-Tenant"], "max_response_bytes": 99,
                     "held_call_timeout": 9.0, "max_held_calls": 3, "max_listen_per_principal": 4,
                     "readyz_token": "t" * 20}, environ={})
    app = create_app(store=object(), audit=False, settings=given, port=6001)
    try:
        gateway = app.gateway
        assert (gateway.port, gateway.max_listen_per_principal, gateway.readyz_token) == (6001, 4, "t" * 20)
        rest = gateway.reloader._make("rest", name="r", server={"name": "r"}, tools=[])
        assert (rest.default_timeout, rest.forward_headers, rest.default_max_bytes) == (7.0, ("x-tenant",), 99)
        upstream = gateway.reloader._make("mcp", name="u", spec={"type": "stdio", "command": "true"}, start=False)
        assert upstream.held_call_timeout == 9.0 and upstream.held_limits["total"] == 3
        assert held._wait() == 9.0
    finally:
        held.shutdown()
