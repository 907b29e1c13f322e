"""``vzctl start CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.start import start as start_ct


@click.command()
@click.argument("ctid")
@click.option("--force", is_flag=True, help="Start even if the CT is disabled (DISABLED=yes).")
@click.option("--wait", is_flag=True,
              help="Return only once the CT's init says it has booted (systemd: READY=1; "
                   "sysvinit: default runlevel reached).")
@click.option("--wait-timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS",
              help="Wait (as --wait) at most this long (default: WAIT_TIMEOUT from the config, else 300); "
                   "exit 133 naming the failed units after it.")
@pass_session
def start(session: Session, ctid: str, force: bool, wait: bool, wait_timeout: float | None) -> None:
    """Start CT CTID: mount it if needed and run its /sbin/init as PID 1 of its own
    namespaces.  Exits 32 if it already runs."""
    start_ct(session.engine, session.container(ctid), force=force,
             wait=wait or wait_timeout is not None, timeout=wait_timeout)
