"""``vzctl destroy CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.create import destroy as destroy_ct


@click.command()
@click.argument("ctid")
@pass_session
def destroy(session: Session, ctid: str) -> None:
    """Remove CT CTID: its private area, root mount point, and config (kept as
    CTID.conf.destroyed).  The CT must be stopped and unmounted."""
    destroy_ct(session.engine, session.container(ctid))
