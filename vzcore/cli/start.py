"""``vzctl start CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.start import start as start_ct


@click.command()
@click.argument("ctid")
@click.option("--force", is_flag=True, help="Start even if the CT is disabled (DISABLED=yes).")
@pass_session
def start(session: Session, ctid: str, force: bool) -> None:
    """Start CT CTID: mount it if needed and run its /sbin/init as PID 1 of its own
    namespaces.  Exits 32 if it already runs."""
    start_ct(session.engine, session.container(ctid), force=force)
