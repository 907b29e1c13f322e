"""``vzlist``: list CTs with their status and any field a plugin declares (table or JSON)."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from typing import Any

import click

from vzcore import __version__
from vzcore.cli.main import exit_now, run_cli
from vzcore.cli.session import Session
from vzcore.container import resolve_ct_argument
from vzcore.errors import CtConfigMissing, InvalidSyntax
from vzcore.lifecycle.status import collect, mount_points, status
from vzcore.params import Field

DEFAULT_FIELDS = ("ctid", "numproc", "status", "ip", "hostname")
NAME_FIELDS = ("smart_name", "numproc", "status", "ip", "hostname")
"""``vzlist -n``: OpenVZ's columns with the CT's name (or its ID if it has none) first."""
ALIASES = {"veid": "ctid", "vpsid": "ctid"}
"""Older names of fields that OpenVZ's vzlist still accepts (``vzlist -Ho veid``)."""
SUFFIXES = {
    "ubc": {"m": "maxheld", "b": "barrier", "l": "limit", "f": "failcnt"},
    "quota": {"s": "softlimit", "h": "hardlimit"},
}
BASE_KEY = {"ubc": "held", "quota": "usage"}
NUMERIC = frozenset({"number", "ubc", "quota"})
"""Kinds whose values are never cut to the column width (only long text is trimmed)."""
LIVE_KEYS = frozenset({None, "maxheld", "failcnt", "usage"})
"""The parts of a ``stopped=False`` object field that describe a running CT (held,
maxheld, failcnt; a quota's usage); its settings (barrier, limit) show for every CT."""


def _column(fields: dict[str, Field], name: str) -> tuple[Field, str | None]:
    """The field behind ``name`` (``numproc.m`` -> numproc, "maxheld")."""
    base, dot, suffix = name.partition(".")
    field = fields.get(ALIASES.get(base, base))
    if field is None:
        raise InvalidSyntax(f"unknown field '{name}'; 'vzlist -L' lists the fields")
    if not dot:
        return field, None
    key = SUFFIXES.get(field.kind, {}).get(suffix)
    if key is None:
        raise InvalidSyntax(f"field '{base}' has no '.{suffix}' variant")
    return field, key


def _raw(field: Field, key: str | None, value: Any) -> Any:
    if isinstance(value, dict) and field.kind in BASE_KEY:
        return value.get(key or BASE_KEY[field.kind])
    return value


def _text(field: Field, value: Any) -> str:
    if value is None or value == []:
        return "-"
    if field.kind == "bool" or isinstance(value, bool):
        return "yes" if value else "no"
    if field.kind == "duration":
        seconds = int(value)
        days, rest = divmod(seconds, 86400)
        return f"{days:03d}d{rest // 3600:02d}h:{rest % 3600 // 60:02d}m:{rest % 60:02d}s"
    if field.kind == "laverage":
        return "/".join(f"{v:.2f}" for v in value)
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return str(value)


def _render(text: str, width: int, last: bool, trim: bool) -> str:
    if trim and not last and len(text) > abs(width):
        text = text[: abs(width)]
    if last and width < 0:
        return text
    return f"{text:<{-width}}" if width < 0 else f"{text:>{width}}"


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (0, value)
    return (1, str(value))


@click.command(context_settings={"help_option_names": ["--help"]})
@click.argument("ctids", nargs=-1)
@click.option("-a", "--all", "show_all", is_flag=True, help="All CTs, not only running ones.")
@click.option("-S", "--stopped", is_flag=True, help="Only CTs that are not running.")
@click.option("-H", "--no-header", is_flag=True, help="No header line.")
@click.option("-t", "--no-trim", is_flag=True, help="Do not truncate long values.")
@click.option("-j", "--json", "as_json", is_flag=True, help="JSON: an array of objects.")
@click.option("-o", "--output", metavar="F[,F...]", help="Fields to show (see -L).")
@click.option("-1", "ids_only", is_flag=True, help="CT IDs only, one per line (= -H -o ctid).")
@click.option("-s", "--sort", "sort_by", metavar="[-]FIELD", help="Sort by FIELD (- reverses).")
@click.option("-n", "--name", "by_name", is_flag=True,
              help="Columns smart_name,numproc,status,ip,hostname (the name, else the CT ID).")
@click.option("-N", "--name_filter", "name_pattern", metavar="PATTERN",
              help="Only CTs whose name matches the shell pattern.")
@click.option("-h", "--hostname", "hostname_pattern", metavar="PATTERN",
              help="Only CTs whose host name matches the shell pattern.")
@click.option("-d", "--description", "description_pattern", metavar="PATTERN",
              help="Only CTs whose description matches the shell pattern.")
@click.option("-L", "--list", "list_fields", is_flag=True, help="List the field names.")
@click.option("--root-dir", envvar="VZ_ROOT", metavar="DIR", help="Path prefix (also: $VZ_ROOT).")
@click.version_option(__version__, "--version", prog_name="vzlist")
def vzlist(ctids: tuple[str, ...], show_all: bool, stopped: bool, no_header: bool,
           no_trim: bool, as_json: bool, output: str | None, ids_only: bool,
           sort_by: str | None, by_name: bool, name_pattern: str | None,
           hostname_pattern: str | None, description_pattern: str | None,
           list_fields: bool, root_dir: str | None) -> int:
    """List CTs: running ones by default; with CTIDs (or names), those CTs."""
    session = Session(root_dir)
    engine = session.engine
    engine.plugins.check_conflicts()
    fields = engine.registry.fields
    if list_fields:
        for name, field in sorted(fields.items()):
            suffixes = "".join(f" .{s}" for s in SUFFIXES.get(field.kind, {}))
            click.echo(f"{name:<16} {field.header:<12} {field.help}{suffixes}")
        for alias, target in sorted(ALIASES.items()):
            click.echo(f"{alias:<16} {fields[target].header:<12} alias of {target}")
        return 0
    if ids_only:
        no_header, output = True, "ctid"
    default = NAME_FIELDS if by_name else DEFAULT_FIELDS
    names = output.split(",") if output else (list(fields) if as_json else list(default))
    if as_json and any("." in n for n in names):
        raise InvalidSyntax("JSON output has whole objects; drop the .m/.b/.l/.f suffixes from -o")
    columns = [_column(fields, n) for n in names]
    wanted_fields = {field.name for field, _key in columns} | {"hostname", "description", "name"}
    if sort_by:
        wanted_fields.add(_column(fields, sort_by.lstrip("-"))[0].name)
    wanted = _wanted(engine, ctids)
    if ctids and not wanted:
        click.echo("Container(s) not found", err=True)
        return 1
    candidates = wanted or (engine.ctids() if show_all or stopped else engine.running_ctids())
    points = mount_points()
    rows: list[dict[str, Any]] = []
    for ctid in candidates:
        ct = engine.container(ctid)
        if not ct.exists:
            continue
        st = status(engine, ct, points)
        if (stopped and st.running) or (not wanted and not (show_all or stopped) and not st.running):
            continue
        values = collect(engine, ct, st, wanted_fields)
        if name_pattern and not fnmatch.fnmatchcase(values.get("name") or "", name_pattern):
            continue
        if hostname_pattern and not fnmatch.fnmatch(values.get("hostname") or "", hostname_pattern):
            continue
        if description_pattern and not fnmatch.fnmatch(values.get("description") or "",
                                                       description_pattern):
            continue
        rows.append(values)
    if wanted and not rows:
        click.echo("Container(s) not found", err=True)
        return 1
    if sort_by:
        field, key = _column(fields, sort_by.lstrip("-"))
        known = [r for r in rows if _raw(field, key, r.get(field.name)) is not None]
        unknown = [r for r in rows if _raw(field, key, r.get(field.name)) is None]
        known.sort(key=lambda r: _sort_key(_raw(field, key, r.get(field.name))),
                   reverse=sort_by.startswith("-"))
        rows = known + unknown  # CTs without a value last, in either direction
    if as_json:
        keys = {n: ALIASES.get(n, n) for n in names}  # "-j -o veid" keeps the key "veid"
        click.echo(json.dumps([{n: row.get(keys[n]) for n in names} for row in rows], indent=2))
        return 0
    _print_table(rows, names, columns, no_header, not no_trim)
    return 0


def _wanted(engine: Any, args: Sequence[str]) -> list[int]:
    """The CTs named on the command line, by CT ID or name; an unknown name is left out
    (as a CTID without a config is), so "Container(s) not found" covers both."""
    wanted: list[int] = []
    known = engine.ctids()
    for arg in args:
        try:
            wanted.append(resolve_ct_argument(arg, engine.paths.conf_dir, known))
        except CtConfigMissing:
            continue
    return wanted


def _print_table(rows: Sequence[dict[str, Any]], names: Sequence[str],
                 columns: Sequence[tuple[Field, str | None]], no_header: bool, trim: bool) -> None:
    last = len(columns) - 1
    if not no_header:
        header = []
        for i, ((field, key), name) in enumerate(zip(columns, names, strict=True)):
            title = field.header + (f".{name.partition('.')[2].upper()}" if key else "")
            header.append(_render(title, field.width, i == last, False))
        click.echo(" ".join(header).rstrip())
    for row in rows:
        cells = []
        for i, (field, key) in enumerate(columns):
            value = _raw(field, key, row.get(field.name))
            if not field.stopped and row.get("status") != "running" and key in LIVE_KEYS:
                value = None  # a stopped CT's usage columns print "-" (JSON keeps 0)
            text = _text(field, value)
            cells.append(_render(text, field.width, i == last, trim and field.kind not in NUMERIC))
        click.echo(" ".join(cells).rstrip())


def main() -> None:
    """Console entry point of ``vzlist``."""
    exit_now(run_cli(vzlist, "vzlist"))
