"""``vzctl restart CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.errors import NotRunning
from vzcore.lifecycle.start import start as start_ct
from vzcore.lifecycle.stop import stop as stop_ct


@click.command()
@click.argument("ctid")
@click.option("--fast", is_flag=True, help="Kill the CT instead of a clean shutdown.")
@click.option("--force", is_flag=True, help="Start even if the CT is disabled.")
@click.option("--wait", is_flag=True, help="Return only once the CT's init says it has booted.")
@pass_session
def restart(session: Session, ctid: str, fast: bool, force: bool, wait: bool) -> None:
    """Stop CT CTID if it runs, then start it."""
    ct = session.container(ctid)
    try:
        stop_ct(session.engine, ct, fast=fast)
    except NotRunning:
        pass  # a stopped CT is simply started, as vzctl restart does
    start_ct(session.engine, ct, force=force, wait=wait)
