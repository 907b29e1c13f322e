"""``vzctl runscript CTID SCRIPT``: run a host file's commands inside a CT, running or not."""

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
    """Run SCRIPT, a file on the host, with /bin/sh inside the CT CTID, as the CT's root;
    exit with the script's own status.

    \b
    A running CT: in its namespaces and cgroups, as 'vzctl exec'.  A stopped CT (as
    OpenVZ): its root is mounted (unless it is), the script runs in it with only the
    root file system (no /proc, no init, no network), isolated as the CT (its user
    namespace, the CT's root as '/'), then the root is unmounted again (a CT mounted
    before stays mounted).  The script is read by the shell from its standard input, as
    OpenVZ's runscript feeds it; the file is never copied into the CT.
    Example: vzctl runscript 101 /root/setup-web.sh
    """
    from vzcore.lifecycle.enter import exec_command

    ct = session.container(ctid)
    ct.require_exists()
    state = session.engine.state(ct)
    stopped = state is None or not state.is_running
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
    if stopped:
        from vzcore.lifecycle.runscript import run_stopped

        return run_stopped(session.engine, ct, ["/bin/sh", "-s"])
    return exec_command(session.engine, ct, ["/bin/sh", "-s"], mode="exec3")
