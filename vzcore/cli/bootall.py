"""``vzctl boot-all`` and ``vzctl stop-all``: the host's ``vz`` service (contrib/systemd)."""

from __future__ import annotations

import time

import click

from vzcore.cli.session import Session, pass_session

PARALLEL = click.option("--parallel", type=click.IntRange(1), metavar="N",
                        help="At most N CTs at a time (default: VE_PARALLEL in vz.conf).")


@click.command("boot-all")
@PARALLEL
@pass_session
def boot_all(session: Session, parallel: int | None) -> None:
    """Start every CT with ONBOOT=yes: higher BOOTORDER first, CTs without one last,
    VE_PARALLEL at a time.  A CT that fails is named and the others still start; the
    exit status is 3 when any failed."""
    from vzcore.lifecycle.bootall import boot_all as run
    from vzcore.lifecycle.bootall import conclude

    started = time.monotonic()
    summary = run(session.engine, parallel=parallel)
    session.say(conclude(summary, time.monotonic() - started))


@click.command("stop-all")
@PARALLEL
@click.option("--fast", is_flag=True, help="Kill the CTs at once instead of asking init to halt.")
@pass_session
def stop_all(session: Session, parallel: int | None, fast: bool) -> None:
    """Stop every running CT, VE_PARALLEL at a time, each within its STOP_TIMEOUT
    (VE_STOP_MODE=stop; suspend is refused: there is no checkpoint provider).  The exit
    status is 33 when any CT failed to stop."""
    from vzcore.lifecycle.bootall import conclude
    from vzcore.lifecycle.bootall import stop_all as run

    started = time.monotonic()
    summary = run(session.engine, parallel=parallel, fast=fast)
    session.say(conclude(summary, time.monotonic() - started))
