"""``vzctl status CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.status import check
from vzcore.lifecycle.status import status as ct_status


@click.command()
@click.argument("ctid")
@pass_session
def status(session: Session, ctid: str) -> None:
    """Print CT CTID's status: CTID 101 exist|deleted mounted|unmounted running|down."""
    engine = session.engine
    ct = session.container(ctid)
    st = ct_status(engine, ct)
    check(engine, ct, st)  # a running CT's shared services (its lxcfs) repaired if dead
    click.echo(st.line())
