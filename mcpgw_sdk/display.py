"""Rich display for notebooks: HTML for documents, servers, tools, version lists and diffs.

Every value shown is escaped. Nothing heavy is imported here: pandas is loaded
only by :meth:`Table.to_dataframe`.

>>> t = Table([{"name": "<b>"}], columns=["name"])
>>> "&lt;b&gt;" in t._repr_html_()
True
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from html import escape
from typing import Any

from .config_model import Tool, default

_STYLE = ("<style>.mcpgw table{border-collapse:collapse;margin:4px 0}"
          ".mcpgw th,.mcpgw td{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}"
          ".mcpgw code{background:#f4f4f4}.mcpgw .muted{color:#777}"
          ".mcpgw pre.diff{background:#fafafa;padding:6px;overflow-x:auto}"
          ".mcpgw .add{color:#116611;background:#e6ffec}.mcpgw .del{color:#aa1111;background:#ffebe9}"
          ".mcpgw .hunk{color:#0550ae}.mcpgw .tool{margin:6px 0 10px 0}</style>")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    return str(value)


def _row_value(row: Any, column: str) -> Any:
    if isinstance(row, dict):
        return row.get(column)
    return getattr(row, column, None)


def table_html(rows: Iterable[Any], columns: list[str], *, title: str | None = None) -> str:
    """An escaped HTML table of ``rows`` (dicts or records) with the given columns."""
    parts = [_STYLE, '<div class="mcpgw">']
    if title:
        parts.append(f"<b>{escape(title)}</b>")
    parts.append("<table><thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr></thead><tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{escape(_text(_row_value(row, c)))}</td>" for c in columns) + "</tr>")
    parts.append("</tbody></table></div>")
    return "".join(parts)


class Table(list):
    """A list of rows (records or dicts) that shows as a table and converts to a DataFrame.

    A long table shows a summary instead of every row: how many rows, the counts per ``group_by``
    column (``"tenant/document"`` joins two columns), the first :attr:`SHOWN` rows as text, and in
    notebooks an HTML table in pages of :attr:`PAGE` rows (the first open, the others folded).
    :meth:`page` gives one page, :meth:`to_dataframe` every row.

    >>> Table([{"a": 1}], columns=["a"]).to_dataframe()["a"].tolist()  # doctest: +SKIP
    [1]
    >>> t = Table([{"s": "x" if i % 3 else "y"} for i in range(100)], columns=["s"], group_by=["s"])
    >>> print(repr(t).splitlines()[1])
    per s: x 66, y 34
    """

    #: Rows per page of the HTML table; a table this long or shorter shows whole.
    PAGE = 50
    #: Rows a long table prints as text.
    SHOWN = 20
    #: Most rows put in the HTML of a long table (the rest: :meth:`page`, :meth:`to_dataframe`).
    HTML_MAX = 2000
    #: Groups listed per ``group_by`` column; the rest are counted together.
    GROUPS = 10

    def __init__(self, rows: Iterable[Any] = (), *, columns: list[str] | None = None, title: str | None = None,
                 group_by: Iterable[str] = ()):
        super().__init__(rows)
        if columns is None:
            columns = _columns_of(self[0]) if self else []
        self.columns = list(columns)
        self.title = title
        self.group_by = list(group_by)

    def to_dataframe(self):
        """The rows as a pandas DataFrame (every field of each row, not only the shown columns)."""
        import pandas

        records = [_as_dict(row) for row in self]
        return pandas.DataFrame.from_records(records, columns=_all_columns(records, self.columns))

    def page(self, number: int) -> Table:
        """Page ``number`` (from 1) of :attr:`PAGE` rows, as a table of its own."""
        if number < 1:
            raise ValueError(f"number: {number} must be 1 or more")
        start = (number - 1) * self.PAGE
        title = f"{self.title or 'rows'} {start + 1}–{min(start + self.PAGE, len(self))} of {len(self)}"
        return Table(self[start:start + self.PAGE], columns=self.columns, title=title)

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows per value of each ``group_by`` column, most frequent first: ``{"server": {"users": 3}}``."""
        found: dict[str, dict[str, int]] = {}
        for group in self.group_by:
            tally: dict[str, int] = {}
            for row in self:
                value = "/".join(_text(_row_value(row, part)) for part in group.split("/"))
                tally[value] = tally.get(value, 0) + 1
            found[group] = dict(sorted(tally.items(), key=lambda item: (-item[1], item[0])))
        return found

    def _count_lines(self) -> list[str]:
        lines = []
        for group, tally in self.counts().items():
            shown = [f"{value} {n}" for value, n in list(tally.items())[:self.GROUPS]]
            rest = list(tally.values())[self.GROUPS:]
            if rest:
                shown.append(f"{len(rest)} more with {sum(rest)}")
            lines.append(f"per {group}: " + ", ".join(shown))
        return lines

    def _repr_html_(self) -> str:
        if len(self) <= self.PAGE:
            return table_html(self, self.columns, title=self.title)
        head = f"{self.title + ': ' if self.title else ''}{len(self)} rows"
        parts = [_STYLE, f'<div class="mcpgw"><b>{escape(head)}</b>']
        parts += [f"<div>{escape(line)}</div>" for line in self._count_lines()]
        shown = min(len(self), self.HTML_MAX)
        for start in range(0, shown, self.PAGE):
            rows = self[start:start + self.PAGE]
            label = f"rows {start + 1}–{start + len(rows)}"
            body = table_html(rows, self.columns)
            parts.append(f"<details{' open' if start == 0 else ''}><summary>{escape(label)}</summary>"
                         f"{body}</details>")
        if shown < len(self):
            parts.append(f'<div class="muted">{len(self) - shown} more rows: .page(n) or .to_dataframe()</div>')
        parts.append("</div>")
        return "".join(parts)

    def __repr__(self) -> str:
        if not self:
            return f"{self.title + ': ' if self.title else ''}(no rows)"
        if len(self) <= self.PAGE:
            return _text_table(self, self.columns)
        lines = [f"{self.title + ': ' if self.title else ''}{len(self)} rows", *self._count_lines(),
                 f"first {self.SHOWN}:", _text_table(self[:self.SHOWN], self.columns, width=60),
                 f"… {len(self) - self.SHOWN} more: .page(n) for {self.PAGE} at a time, .to_dataframe() for all"]
        return "\n".join(lines)


def _text_table(rows: list[Any], columns: list[str], width: int | None = None) -> str:
    # A summary cuts long cells (``width``) so each of its rows stays on a line or two.
    cells = [[_cut(_text(_row_value(row, c)), width) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cut(text: str, width: int | None) -> str:
    return text if width is None or len(text) <= width else text[:width - 1] + "…"


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return dict(row)
    if dataclasses.is_dataclass(row):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row) if f.repr}
    return dict(vars(row))


def _columns_of(row: Any) -> list[str]:
    return list(_as_dict(row))


def _all_columns(records: list[dict[str, Any]], first: list[str]) -> list[str]:
    columns = list(first)
    for record in records:
        for key in record:
            if key not in columns:
                columns.append(key)
    return columns


class Diff(str):
    """A unified diff (plain text) that notebooks show coloured.

    >>> "del" in Diff("-a\\n+b\\n")._repr_html_()
    True
    """

    def _repr_html_(self) -> str:
        return diff_html(self)


def diff_html(text: str) -> str:
    """A unified diff as escaped, coloured HTML."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            css = "muted"
        elif line.startswith("+"):
            css = "add"
        elif line.startswith("-"):
            css = "del"
        elif line.startswith("@@"):
            css = "hunk"
        else:
            css = ""
        lines.append(f'<span class="{css}">{escape(line)}</span>' if css else escape(line))
    body = "\n".join(lines) if lines else '<span class="muted">(no differences)</span>'
    return f'{_STYLE}<div class="mcpgw"><pre class="diff">{body}</pre></div>'


def _args_table(args: list[dict[str, Any]]) -> str:
    if not args:
        return '<div class="muted">no arguments</div>'
    return table_html(args, ["name", "type", "position", "required", "default", "description"])


def tool_html(tool: dict[str, Any], *, tenant: str = "", document: str = "", server: str = "") -> str:
    """A tool as HTML: name, description, endpoint and an arguments table."""
    where = "/".join(p for p in (tenant, document) if p)
    head = f"<b>{escape(tool.get('name', ''))}</b>"
    if where or server:
        head += f' <span class="muted">{escape(where)}{" · " + escape(server) if server else ""}</span>'
    parts = [_STYLE, '<div class="mcpgw tool">', head]
    if tool.get("description"):
        parts.append(f"<div>{escape(tool['description'])}</div>")
    if tool.get("endpoint"):
        parts.append(f"<div><code>{escape(tool.get('method', default(Tool, 'method')))} {escape(tool['endpoint'])}</code></div>")
    parts.append(_args_table(tool.get("args", [])))
    if tool.get("responseBody"):
        parts.append(f"<div>response: <code>{escape(tool['responseBody'])}</code></div>")
    parts.append("</div>")
    return "".join(parts)


def server_html(server: dict[str, Any], *, kind: str = "rest", tenant: str = "", document: str = "",
                prefixes: Iterable[str] = ()) -> str:
    """A REST or upstream MCP server as HTML."""
    parts = [_STYLE, '<div class="mcpgw">', f"<b>{escape(server.get('name', ''))}</b> "
             f'<span class="muted">{escape(kind)} · {escape("/".join(p for p in (tenant, document) if p))}</span>']
    if server.get("description"):
        parts.append(f"<div>{escape(server['description'])}</div>")
    prefixes = list(prefixes)
    if prefixes:
        parts.append("<div>served at " + ", ".join(f"<code>{escape(p)}</code>" for p in prefixes) + "</div>")
    if kind == "mcp":
        target = server.get("url") or " ".join([server.get("command", "")] + list(server.get("args", [])))
        parts.append(f"<div><code>{escape(server.get('type', ''))} {escape(target)}</code></div>")
    for key in ("allowedTools", "deniedTools"):
        if server.get(key):
            parts.append(f"<div>{key}: {escape(', '.join(server[key]))}</div>")
    if server.get("config"):
        parts.append(table_html([{"key": k, "value": v} for k, v in server["config"].items()], ["key", "value"]))
    parts.append("</div>")
    return "".join(parts)


def document_html(content: dict[str, Any], *, version: int | None = None) -> str:
    """A whole config document: routers, servers, upstream MCP servers, tools and prompts."""
    state = f"version {version}" if version is not None else "unsaved"
    parts = [_STYLE, '<div class="mcpgw">',
             f"<h4>{escape(content.get('tenant', ''))}/{escape(content.get('name', ''))} "
             f'<span class="muted">{escape(state)}</span></h4>']
    if content.get("routers"):
        parts.append(table_html(content["routers"], ["prefix", "server", "auth", "cors"], title="Routers"))
    if content.get("servers"):
        parts.append(table_html(content["servers"], ["name", "description", "allowedTools", "config"],
                                title="REST servers"))
    if content.get("mcpServers"):
        parts.append(table_html(content["mcpServers"], ["name", "type", "command", "args", "url"],
                                title="Upstream MCP servers"))
    if content.get("tools"):
        parts.append("<b>Tools</b>")
    for tool in content.get("tools", []):
        parts.append(tool_html(tool))
    if content.get("prompts"):
        rows = [{**p, "arguments": [a.get("name", "") for a in p.get("arguments", []) or []]}
                for p in content["prompts"]]
        parts.append(table_html(rows, ["name", "description", "arguments"], title="Prompts"))
    parts.append("</div>")
    return "".join(parts)


def versions_html(versions: Iterable[Any]) -> str:
    """A document's history as an HTML table."""
    return table_html(versions, ["version", "action", "author", "created_at", "reverted_from", "content_hash"],
                      title="Versions")


@dataclasses.dataclass(frozen=True)
class ToolInfo:
    """One tool as listed across documents: where it lives, how it is called, its arguments."""

    tenant: str
    document: str
    server: str
    name: str
    description: str
    method: str
    endpoint: str
    args: tuple[str, ...]
    tool: dict[str, Any] = dataclasses.field(repr=False, compare=False, default_factory=dict)

    def _repr_html_(self) -> str:
        return tool_html(self.tool, tenant=self.tenant, document=self.document, server=self.server)


@dataclasses.dataclass(frozen=True)
class ServerInfo:
    """One REST or upstream MCP server as listed across documents, with the prefixes serving it."""

    tenant: str
    document: str
    name: str
    kind: str
    description: str
    prefixes: tuple[str, ...]
    tools: tuple[str, ...]
    target: str = ""
    server: dict[str, Any] = dataclasses.field(repr=False, compare=False, default_factory=dict)

    def _repr_html_(self) -> str:
        return server_html(self.server, kind=self.kind, tenant=self.tenant, document=self.document,
                           prefixes=self.prefixes)


class VersionTable(Table):
    """A document's versions, newest first; shows as an HTML table."""

    def _repr_html_(self) -> str:
        return versions_html(self)
