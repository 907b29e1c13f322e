"""``vzctl runscript CTID SCRIPT``: run a host file's commands inside a running CT."""

from __future__ import annotations

import os

import click

from vzcore.cli.session import Session, pass_session
from vzcore.errors import VzError

NO_SCRIPT = 11  # VZ_NOSCRIPT: the script cannot be read


@click.command()
@click.argument("ctid")
@click.argument("script", type=click.Path(dir_okay=False))
@pass_session
def runscript(session: Session, ctid: str, script: str) -> int:
    """Run SCRIPT, a file on the host, with /bin/sh inside the running CT CTID, as root in
    the CT's namespaces and cgroups; exit with the script's own status.

    \b
    The script is read by the shell from its standard input, as OpenVZ's runscript feeds
    it; the file is never copied into the CT.  A stopped CT is refused (31): start it.
    Example: vzctl runscript 101 /root/setup-web.sh
    """
    from vzcore.lifecycle.enter import exec_command, running

    ct = session.container(ctid)
    running(session.engine, ct)  # refuse a stopped CT before opening anything
    try:
        fd = os.open(script, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise VzError(f"CT {ct.ctid}: cannot read the script {script}: {exc.strerror}; give "
                      "a readable file on the host", exit_code=NO_SCRIPT) from None
    try:
        if not os.path.isfile(f"/proc/self/fd/{fd}"):
            raise VzError(f"CT {ct.ctid}: the script {script} is not a regular file",
                          exit_code=NO_SCRIPT)
        os.set_blocking(fd, True)
        os.dup2(fd, 0)  # the shell in the CT reads the script from its stdin
    finally:
        os.close(fd)
    return exec_command(session.engine, ct, ["/bin/sh", "-s"],
                        mode="exec3")
