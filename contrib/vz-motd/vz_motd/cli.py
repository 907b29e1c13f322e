"""``vzctl motd CTID``: a command contributed by the plugin."""

from __future__ import annotations

import click

from vz_motd.plugin import render
from vzcore.cli.session import Session, pass_session


@click.command()
@click.argument("ctid")
@pass_session
def motd(session: Session, ctid: str) -> None:
    """Print the message of the day CT CTID shows at login."""
    ct = session.container(ctid)
    ct.require_exists()
    click.echo(render(ct).decode(), nl=False)
