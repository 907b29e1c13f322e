"""``vzctl exec|exec2|exec3 CTID command...``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.enter import exec_command

_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def _run(session: Session, ctid: str, command: tuple[str, ...], mode: str) -> int:
    return exec_command(session.engine, session.container(ctid), command, mode=mode)


@click.command(context_settings=_SETTINGS)
@click.argument("ctid")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_session
def exec_(session: Session, ctid: str, command: tuple[str, ...]) -> int:
    """Run COMMAND (its words joined with spaces) with /bin/sh -c inside CT CTID.

    Exits 8 when the command fails.  Example: vzctl exec 101 'ps ax | grep init'.
    With COMMAND '-', the shell reads the commands from stdin.
    """
    return _run(session, ctid, command, "exec")


@click.command(context_settings=_SETTINGS)
@click.argument("ctid")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_session
def exec2(session: Session, ctid: str, command: tuple[str, ...]) -> int:
    """Like exec, but exit with the command's own status."""
    return _run(session, ctid, command, "exec2")


@click.command(context_settings=_SETTINGS)
@click.argument("ctid")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@pass_session
def exec3(session: Session, ctid: str, command: tuple[str, ...]) -> int:
    """Run COMMAND as an argument vector inside CT CTID, without a shell; exit with its
    status."""
    return _run(session, ctid, command, "exec3")
