"""``vzctl stop CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.stop import stop as stop_ct


@click.command()
@click.argument("ctid")
@click.option("--fast", is_flag=True, help="Kill the CT at once instead of asking init to halt.")
@click.option("--skip-umount", is_flag=True, help="Leave the CT's root mounted.")
@click.option("--force", is_flag=True,
              help="Stop even when a plugin that recorded state for the CT is missing or "
                   "disabled: clean processes, cgroups and mounts, drop its record.")
@pass_session
def stop(session: Session, ctid: str, fast: bool, skip_umount: bool, force: bool) -> None:
    """Stop CT CTID: run halt inside, wait STOP_TIMEOUT seconds for its init to exit, kill
    what is left, and clean up everything the start made."""
    stop_ct(session.engine, session.container(ctid), fast=fast, skip_umount=skip_umount,
            force=force)
