"""``vzctl mount CTID`` and ``vzctl umount CTID``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.mount import mount_verb, umount_verb


@click.command()
@click.argument("ctid")
@pass_session
def mount(session: Session, ctid: str) -> None:
    """Mount CT CTID's root file system at its VE_ROOT."""
    mount_verb(session.engine, session.container(ctid))


@click.command()
@click.argument("ctid")
@pass_session
def umount(session: Session, ctid: str) -> None:
    """Unmount stopped CT CTID's root file system."""
    umount_verb(session.engine, session.container(ctid))
