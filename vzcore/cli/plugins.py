"""``vzctl plugins``: what is installed, what is active, and why not."""

from __future__ import annotations

import json
from typing import Any

import click

from vzcore.cli.session import Session, pass_session


@click.command()
@click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON.")
@pass_session
def plugins(session: Session, as_json: bool) -> None:
    """List every discovered plugin: name, version, subsystem, state (active, or why not)
    and the parameters it owns."""
    engine = session.engine
    loaded = engine.plugins
    owned: dict[str, list[str]] = {}
    if not loaded.conflicts:
        for param in engine.registry.unique_parameters():
            owned.setdefault(engine.registry.param_owner[param.name], []).append(param.name)
    rows: list[dict[str, Any]] = []
    for name, st in sorted(loaded.statuses.items()):
        rows.append({
            "name": name,
            "version": st.version,
            "subsystem": st.subsystem,
            "state": st.state,
            "reason": st.reason or None,
            "summary": st.summary or None,
            "parameters": sorted(owned.get(name, [])),
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NAME':<14} {'VERSION':<9} {'SUBSYSTEM':<13} {'STATE':<13} PARAMETERS")
    for row in rows:
        params = " ".join(f"--{p}" for p in row["parameters"]) or "-"
        click.echo(f"{row['name']:<14} {row['version'] or '-':<9} {row['subsystem'] or '-':<13} "
                   f"{row['state']:<13} {params}")
        if row["reason"]:
            click.echo(f"{'':<14} ({row['reason']})")
