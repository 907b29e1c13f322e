"""``vzctl console CTID [--detach-key KEY]``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.console import attach


@click.command()
@click.argument("ctid")
@click.option("--detach-key", metavar="KEY", default=None,
              help="A control key that detaches, as ^X (for example ^]); default: Esc then "
                   ". at the start of a line, as OpenVZ's vzctl console.")
@pass_session
def console(session: Session, ctid: str, detach_key: str | None) -> int:
    """Attach to the console of running CT CTID: what its init and getty write to
    /dev/console, with the recent output first.  One user at a time; detach with the
    detach key, which leaves the CT running.
    """
    return attach(session.engine, session.container(ctid), detach_key)
