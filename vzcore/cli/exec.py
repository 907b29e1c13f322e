"""``vzctl exec|exec2|exec3 CTID command...``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.enter import exec_command

_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def _run(session: Session, ctid: str, command: tuple[str, ...], mode: str, tty: bool) -> int:
    return exec_command(session.engine, session.container(ctid), command, mode=mode, tty=tty)


_tty = click.option("-t", "--tty", is_flag=True,
                    help="Give the command a pseudo-terminal of the CT's own (as enter does) "
                         "instead of pipes; put it before CTID.")


@click.command(context_settings=_SETTINGS)
@click.argument("ctid")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_tty
@pass_session
def exec_(session: Session, ctid: str, command: tuple[str, ...], tty: bool) -> int:
    """Run COMMAND (its words joined with spaces) with /bin/sh -c inside CT CTID.

    Exits 8 when the command fails.  Example: vzctl exec 101 'ps ax | grep init'.
    With COMMAND '-', the shell reads the commands from stdin.  The command's stdio are
    pipes to vzctl's; it never shares vzctl's terminal or session (-t: a terminal of the
    CT's own).
    """
    return _run(session, ctid, command, "exec", tty)


@click.command(context_settings=_SETTINGS)
@click.argument("ctid")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_tty
@pass_session
def exec2(session: Session, ctid: str, command: tuple[str, ...], tty: bool) -> int:
    """Like exec, but exit with the command's own status."""
    return _run(session, ctid, command, "exec2", tty)


@click.command(context_settings=_SETTINGS)
@click.argument("ctid")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
@_tty
@pass_session
def exec3(session: Session, ctid: str, command: tuple[str, ...], tty: bool) -> int:
    """Run COMMAND as an argument vector inside CT CTID, without a shell; exit with its
    status."""
    return _run(session, ctid, command, "exec3", tty)
