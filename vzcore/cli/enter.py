"""``vzctl enter CTID [--exec command...]``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.lifecycle.enter import enter as enter_ct


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("ctid")
@click.option("--exec", "exec_", is_flag=True,
              help="Run the command given after the options, then stay in the shell.")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
@pass_session
def enter(session: Session, ctid: str, exec_: bool, command: tuple[str, ...]) -> int:
    """Open an interactive root shell inside CT CTID on a pseudo-terminal of the CT's own."""
    if command and not exec_:
        raise click.UsageError("extra arguments need --exec before them")
    return enter_ct(session.engine, session.container(ctid), command)
