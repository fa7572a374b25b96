"""The ``mcpgw`` command line (click).

SDK commands live here; other parts (the gateway, the API, the console) add
theirs through the ``mcpgw.commands`` entry point group, so the SDK imports none
of them.
"""

from __future__ import annotations

import os
import re
import sys
from importlib.metadata import entry_points

import click
from click.core import ParameterSource

from . import settings
from .errors import ConfigError, McpgwError, NotFound
from .records import ROLES
from .store import AccountStore


def db_option(func):
    """The ``--db URL`` option every command takes (``MCPGW_DATABASE_URL`` sets it too)."""
    return settings.option("database_url", "--db", "db", metavar="URL")(func)


#: ``[env: MCPGW_X]`` in an option's help names the setting the option sets.
_ENV_IN_HELP = re.compile(r"\[env: (MCPGW_[A-Z0-9_]+)")
#: the ``ctx.meta`` key under which a group remembers the subcommand it resolved, and its arguments
_INVOKED = "mcpgw.invoked"


def cli_message(ctx: click.Context, message: str) -> str:
    """``message`` with the field names it uses spelled as the user set them: flag or environment variable.

    Errors of the library name fields (``database_url: …``, ``pass base_url``); on the command line
    the user knows ``--db`` and ``--base-url``. A value that came from a flag names the flag; one
    that came from an ``MCPGW_*`` variable names the variable; a value left unset names the flag
    (where the command has one) as the way to give it. ``ctx`` is the command's own context.

    >>> @click.command()
    ... @click.option("--base-url", help="Base URL.")
    ... def demo(base_url): ...
    >>> cli_message(click.Context(demo), "the spec has no servers[0].url; pass base_url")
    'the spec has no servers[0].url; pass --base-url'
    """
    spelled: dict[str, str] = {s.name: s.env for s in settings.SETTINGS.values() if s.env in os.environ}
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or not param.opts:
            continue
        flag = max(param.opts, key=len)
        fields = {param.name}
        named = _ENV_IN_HELP.search(param.help or "")
        if named:
            fields.add(named.group(1)[len("MCPGW_"):].lower())
        elif param.name == "db":
            fields.add("database_url")
        from_flag = ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE
        for field in fields:
            if from_flag or field not in spelled:
                spelled[field] = flag
    for field, shown in sorted(spelled.items(), key=lambda item: -len(item[0])):
        if "_" in field:  # an identifier: replace it wherever it stands alone
            pattern = rf"(?<![\w./-]){re.escape(field)}(?![\w-])"
        else:  # a plain word: only as the field a line's message is about ("tenant: …")
            pattern = rf"(?m)^{re.escape(field)}(?=:)"
        message = re.sub(pattern, lambda _m, shown=shown: shown, message)
    return message


class McpgwGroup(click.Group):
    """A group that turns McpgwError into a one-line message and exit code 1.

    The message names the flags and ``MCPGW_*`` variables the user set rather than
    the library's field names (:func:`cli_message`).
    """

    def resolve_command(self, ctx, args):
        """Find the subcommand, remembering it and its arguments to word an error afterwards."""
        name, command, rest = super().resolve_command(ctx, args)
        ctx.meta[_INVOKED] = (name, command, list(rest))
        return name, command, rest

    def invoke(self, ctx):
        """Run the subcommand; an McpgwError becomes ``Error: …`` on standard error and exit code 1."""
        try:
            return super().invoke(ctx)
        except McpgwError as exc:
            click.echo(f"Error: {self._message(ctx, str(exc))}", err=True)
            sys.exit(1)

    @staticmethod
    def _message(ctx: click.Context, message: str) -> str:
        name, command, args = ctx.meta.get(_INVOKED, (None, None, []))
        if command is None or isinstance(command, click.Group):
            return message
        try:  # parse the arguments again (they parsed once already) to learn which options were typed
            sub = command.make_context(name, list(args), parent=ctx, resilient_parsing=True)
        except click.ClickException:
            return message
        return cli_message(sub, message)


@click.group(cls=McpgwGroup)
@click.version_option(package_name="mcpgw-gateway")
def cli():
    """mcpgw: serve REST APIs and MCP servers as MCP endpoints, by configuration."""


def _load_plugins() -> None:
    for ep in entry_points(group="mcpgw.commands"):
        ep.load()(cli)


def main(argv=None):
    """Entry point of the ``mcpgw`` console script."""
    _load_plugins()
    return cli.main(args=argv, prog_name="mcpgw")


# -- helpers ---------------------------------------------------------------------

def _workspace(db: str | None, *, author: str | None = None):
    """A workspace on ``--db`` whose store is closed when the command ends."""
    from .opening import open_store  # peewee loads after `mcpgw serve` patched with gevent, not at import
    from .workspace import Workspace

    store = open_store(db)
    ctx = click.get_current_context()
    ctx.call_on_close(store.close)
    return Workspace(store, author=author)


def _raw_store(db: str | None):
    """The store without the schema check (for ``db upgrade|status``)."""
    from .opening import open_store

    store = open_store(db, check=False)
    click.get_current_context().call_on_close(store.close)
    return store


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        text = click.get_text_stream("stdin").read()
        # The first line is the password: `echo pw | mcpgw ...` adds a newline that is not part of it.
        password = text.split("\n", 1)[0].rstrip("\r")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise ConfigError("password: is empty")
    return password


# -- db ----------------------------------------------------------------------

@cli.group(cls=McpgwGroup)
def db():
    """Create or upgrade the database schema, or show its migrations."""


@db.command("upgrade")
@db_option
def db_upgrade(db):
    """Apply pending schema migrations (creates the tables of a new database)."""
    store = _raw_store(db)
    applied = store.upgrade()
    if applied:
        click.echo(f"Applied {len(applied)} migration(s) to {store.url}: {', '.join(applied)}")
    else:
        click.echo(f"{store.url} is up to date.")


@db.command("status")
@db_option
def db_status(db):
    """List every migration and whether it is applied."""
    store = _raw_store(db)
    status = store.migration_status()
    for name, applied in status:
        click.echo(f"{'applied' if applied else 'pending'}  {name}")
    pending = [name for name, applied in status if not applied]
    if pending:
        click.echo(f"{len(pending)} pending: run `mcpgw db upgrade --db {store.url}`")
    else:
        click.echo("Schema is current.")


# -- import / export / check ---------------------------------------------------

FORMAT_CHOICE = click.Choice(["mcpgw", "unla"])


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=FORMAT_CHOICE, default=None,
              help="Format of the files; by default Unla documents are detected and translated.")
@click.option("--author", default=None, help="Name recorded as the author of the new versions.")
@db_option
def import_(files, fmt, author, db):
    """Import config documents from YAML/JSON FILES in one transaction (all or nothing).

    A document whose tenant and name exist is replaced as a new version.
    """
    from .unla import wrong_format_error

    gw = _workspace(db, author=author)
    try:
        saved = gw.import_files(files, format=fmt)
    except ConfigError as exc:
        spots = getattr(exc, "unla_spots", None)
        if spots:  # say it with this command's option
            raise wrong_format_error(spots, "--format unla") from None
        raise
    click.echo(f"Imported {len(saved)} document(s):")
    for doc in saved:
        click.echo(f"  {doc.tenant}/{doc.name} (version {doc.version})")


@cli.command("export")
@click.option("--tenant", default=None, help="Export only this tenant's documents.")
@click.option("--name", default=None, help="Export only the document with this name.")
@click.option("--format", "fmt", type=FORMAT_CHOICE, default="mcpgw", show_default=True,
              help="Write our format or Unla's.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@db_option
def export(tenant, name, fmt, output, db):
    """Write stored config documents as a YAML stream (documents separated by ---)."""
    skipped: list[str] = []
    text = _workspace(db).export(tenant=tenant, name=name, format=fmt, skipped=skipped)
    for reason in skipped:
        click.echo(f"Warning: skipped {reason}", err=True)
    if skipped and not text:
        raise click.ClickException(f"nothing exported: {len(skipped)} document(s) have no Unla spelling")
    if output:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(text)
        click.echo(f"Wrote {text.count(chr(10) + '---' + chr(10)) + (1 if text else 0)} document(s) to {output}",
                   err=True)
    else:
        click.echo(text, nl=False)


@cli.command("check")
@db_option
def check(db):
    """Validate every stored config document; exit 1 listing the problems."""
    import logging

    # A yaml:// store logs each problem it finds while loading; check prints them itself, once.
    quiet = logging.getLogger("mcpgw_sdk.yamlstore")
    was = quiet.disabled
    quiet.disabled = True
    click.get_current_context().call_on_close(lambda: setattr(quiet, "disabled", was))
    gw = _workspace(db)
    problems = gw.check()
    records = gw.store.list_documents()
    count = len(records)
    for line in _env_warnings(records):
        click.echo(f"Warning: {line}", err=True)
    if problems:
        for line in problems:
            click.echo(line)
        click.echo(f"{len(problems)} problem(s) in {count} document(s).", err=True)
        sys.exit(1)
    click.echo(f"All {count} document(s) are valid.")


def _fit_problems(db: str | None, content: dict) -> list[str]:
    """Why the stored configuration would refuse ``content`` (its tenant's prefix, prefixes taken); [] if unknown."""
    from . import documents

    url = settings.get("database_url", db)
    if url.startswith("sqlite:///") and not os.path.exists(url[len("sqlite:///"):]):
        return []  # nothing stored yet (and a dry run creates no database)
    from .opening import open_store

    try:
        store = open_store(url)
    except McpgwError:
        return []
    try:
        tenants = {t.name: t.prefix for t in store.list_tenants()}
        key = documents.key(content)
        tenants.setdefault(key[0], "/")  # a new tenant is created around its first document
        others = [d.content for d in store.list_documents() if (d.tenant, d.name) != key]
    except McpgwError:
        return []
    finally:
        store.close()
    return documents.validate_set([content, *others], tenants).get(key, [])


def _env_warnings(records) -> list[str]:
    """Template fields that read an ``env()`` name the ``template_env`` setting does not allow."""
    from .documents import iter_templates
    from .templates import forbidden_env

    lines = []
    for record in records:
        for path, container, key in iter_templates(record.content):
            reason = forbidden_env(str(container[key]), field=path)
            if reason:
                lines.append(f"{record.tenant}/{record.name}: {reason} (what reads it fails until then)")
    return lines


@cli.command("delete")
@click.argument("document", metavar="TENANT/NAME")
@click.option("--author", default=None, help="Name recorded as the author of the deletion.")
@db_option
def delete(document, author, db):
    """Delete config document TENANT/NAME; a new version records the deletion, so it stays restorable.

    Gateways stop serving its routers within one poll and its prefixes are freed.
    """
    tenant, sep, name = document.partition("/")
    if not sep or not tenant or not name:
        raise click.BadParameter(f"{document!r}: expected TENANT/NAME, e.g. default/users",
                                 param_hint="TENANT/NAME")
    gw = _workspace(db, author=author)
    try:
        version = gw.delete(tenant, name)
    except NotFound:
        gone = [d for d in gw.store.list_documents(tenant=tenant, include_deleted=True) if d.name == name]
        if gone:
            raise NotFound(f"document {tenant}/{name} is already deleted (version {gone[0].version})") from None
        raise NotFound(f"document {tenant}/{name} does not exist (`mcpgw export --tenant {tenant}` "
                       "shows the tenant's documents)") from None
    click.echo(f"Deleted {tenant}/{name}: version {version.version} records the deletion; "
               "its history keeps it (roll back in the console, the API or the SDK to restore it).")


# -- openapi -------------------------------------------------------------------

@cli.group(cls=McpgwGroup)
def openapi():
    """Turn OpenAPI (Swagger 2.0, OpenAPI 3.0/3.1) specs into REST tools."""


@openapi.command("import")
@click.argument("spec")
@click.option("--name", required=True, help="Name of the document (and of its REST server).")
@click.option("--tenant", default="default", show_default=True, help="Tenant the document belongs to.")
@click.option("--prefix", default=None, help="Router prefix clients connect to (default /TENANT/NAME).")
@click.option("--base-url", default=None, help="Base URL of the API (default: the spec's first server URL).")
@click.option("--header", "headers", multiple=True, metavar="NAME=VALUE",
              help="A header every tool sends; VALUE is a template kept in the server's config "
                   "(e.g. 'X-Tenant={{ env(\"TENANT\") }}'). Repeatable.")
@click.option("--config", "config", multiple=True, metavar="NAME=VALUE",
              help="Set or replace a server config value, e.g. the credential of a security scheme: "
                   "'api_key={{ secrets.PETS_KEY }}'. Repeatable.")
@click.option("--dry-run", is_flag=True, help="Print the tools it would create and write nothing.")
@click.option("--author", default=None, help="Name recorded as the author of the new version.")
@db_option
def openapi_import(spec, name, tenant, prefix, base_url, headers, config, dry_run, author, db):
    """Create or replace document NAME with one tool per operation of SPEC (a file or URL)."""
    extra = {"headers": _pairs(headers, "--header"), "config": _pairs(config, "--config")}
    if dry_run:
        from . import openapi as oa

        content = oa.from_openapi(oa.load_spec(spec), name=name, tenant=tenant, prefix=prefix, base_url=base_url,
                                  **extra)
        tools = content.get("tools", []) or []
        for tool in tools:
            args = ", ".join(a.get("name", "") for a in tool.get("args", []) or [])
            click.echo(f"{tool.get('name')}  {tool.get('method', '')} {tool.get('endpoint', '')}  ({args})")
        prefixes = ", ".join(r.get("prefix", "") for r in content.get("routers", []) or [])
        for problem in _fit_problems(db, content):
            click.echo(f"Warning: {problem} (the import would be refused; choose another --prefix)", err=True)
        click.echo(f"Dry run: {len(tools)} tool(s) for {tenant}/{name} at {prefixes}; nothing written.", err=True)
        return
    doc = _workspace(db, author=author).import_openapi(spec, name=name, tenant=tenant, prefix=prefix,
                                                        base_url=base_url, **extra)
    tools = doc.content.get("tools", []) or []
    click.echo(f"Saved {doc.tenant}/{doc.name} version {doc.version} with {len(tools)} tool(s).")
    _credentials_hint(doc.content)


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    """``NAME=VALUE`` option values as a map; a value without ``=`` is a usage error naming the option."""
    out = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint=option)
        out[key.strip()] = text
    return out


def _credentials_hint(content: dict) -> None:
    """Say which environment variables the imported credentials read (they must be in MCPGW_TEMPLATE_ENV)."""
    from .templates import env_names

    config = ((content.get("servers") or [{}])[0].get("config") or {})
    names = sorted({n for value in config.values() for n in env_names(str(value))})
    if names:
        click.echo(f"Credentials are read from {', '.join(names)}: set them and list them in MCPGW_TEMPLATE_ENV, "
                   "or replace servers[0].config values (e.g. with {{ secrets.NAME }}).", err=True)


# -- users -----------------------------------------------------------------------

@cli.group(cls=McpgwGroup)
def user():
    """Manage user accounts (console and management API logins)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(list(ROLES)), required=True,
              help="admin manages everything; member manages the tenants listed with --tenant.")
@click.option("--tenant", "tenants", multiple=True, metavar="TENANT",
              help="Tenant the user belongs to (repeat for several).")
@click.option("--password-stdin", is_flag=True,
              help="Read the password from standard input (the first line) instead of prompting twice.")
@db_option
def user_add(name, role, tenants, password_stdin, db):
    """Create user NAME."""
    gw = _workspace(db)
    password = _read_password(password_stdin)
    created = gw.create_user(name, password, role=role, tenants=tenants)
    click.echo(f"Created {created.role} {created.name}"
               + (f" in {', '.join(created.tenants)}" if created.tenants else "") + ".")


@user.command("list")
@db_option
def user_list(db):
    """List users with their role, state and tenants."""
    click.echo(repr(_workspace(db).users()))


@user.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True,
              help="Read the new password from standard input (the first line) instead of prompting twice.")
@db_option
def user_passwd(name, password_stdin, db):
    """Set the password of user NAME."""
    gw = _workspace(db)
    if not isinstance(gw.store, AccountStore):  # a yaml:// directory has no users
        raise NotFound(f"user {name!r} does not exist")
    gw.store.get_user(name)
    gw.store.set_password(name, _read_password(password_stdin))
    click.echo(f"Password of {name} changed.")


# -- API keys ----------------------------------------------------------------------

@cli.group(cls=McpgwGroup)
def key():
    """Manage API keys that MCP clients present to the gateway."""


@key.command("create")
@click.option("--user", "user_name", required=True, help="User the key acts for.")
@click.option("--tenant", required=True, help="Tenant whose servers the key reaches.")
@click.option("--name", default="", help="A label to recognise the key in lists.")
@click.option("--server", "servers", multiple=True, metavar="SERVER",
              help="Restrict the key to this server (repeat for several; default: all of the tenant's).")
@click.option("--tool", "tools", multiple=True, metavar="TOOL",
              help="Restrict the key to this tool (repeat for several; default: all).")
@click.option("--expires-days", type=click.IntRange(min=1), default=None,
              help="Days until the key expires (default: never).")
@db_option
def key_create(user_name, tenant, name, servers, tools, expires_days, db):
    """Create an API key and print its secret (shown this once, on standard output)."""
    new = _workspace(db).create_key(user_name, tenant, name=name, servers=servers, tools=tools,
                                    expires_days=expires_days)
    click.echo(f"Created key {new.key.id} for {new.key.user} on tenant {new.key.tenant}. "
               "Store the secret now: it is not shown again.", err=True)
    click.echo(new.secret)


@key.command("list")
@click.option("--user", "user_name", default=None, help="Only this user's keys.")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
@db_option
def key_list(user_name, tenant, db):
    """List API keys, newest first (prefixes only, never secrets)."""
    click.echo(repr(_workspace(db).keys(user=user_name, tenant=tenant)))


@key.command("revoke")
@click.argument("key_id", type=int)
@db_option
def key_revoke(key_id, db):
    """Revoke API key KEY_ID (gateways drop it within one poll)."""
    gw = _workspace(db)
    gw.store.get_key(key_id)
    gw.revoke_key(key_id)
    click.echo(f"Revoked key {key_id}.")
