"""``vzctl destroy CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.create import destroy as destroy_ct


@click.command()
@click.argument("ctid")
@click.option("--force", is_flag=True,
              help="Also remove a private area without vzcore's mark (made by an older "
                   "release) that is not at the VE_PRIVATE path vz.conf's pattern (or the "
                   "default /vz/private/CTID) gives the CT.")
@pass_session
def destroy(session: Session, ctid: str, force: bool) -> None:
    """Remove CT CTID: its private area, root mount point, and config (kept as
    CTID.conf.destroyed).  The CT must be stopped and unmounted, and its private area must
    carry vzcore's mark for CTID (see docs/security.md)."""
    destroy_ct(session.engine, session.container(ctid), force=force)
