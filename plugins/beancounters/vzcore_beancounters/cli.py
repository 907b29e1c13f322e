"""``vzctl ubc [-j] [CTID...]``: beancounters as ``/proc/user_beancounters`` shows them."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session
from vzcore.errors import CtConfigMissing


@click.command()
@click.argument("ctids", nargs=-1)
@click.option("-j", "--json", "as_json", is_flag=True,
              help="JSON: an array of {ctid, <resource>: {held, maxheld, barrier, limit, failcnt}}.")
@pass_session
def ubc(session: Session, ctids: tuple[str, ...], as_json: bool) -> int:
    """Show the beancounters of running CTs (all of them, or the CTIDs given).

    \b
    The layout is /proc/user_beancounters' (Version 2.5), row for row; a stopped CT
    named on the command line shows its configured barriers and limits with zeros.
    Inside a CT, /dev/user_beancounters shows the same rows for that CT.
    """
    from vzcore.lifecycle.status import status
    from vzcore.runtime import Run
    from vzcore_beancounters.snapshot import table_of
    from vzcore_beancounters.table import as_json as json_text
    from vzcore_beancounters.table import proc_text

    engine = session.engine
    engine.plugins.check_conflicts()
    wanted = [session.resolve(c) for c in ctids]
    blocks = []
    for ctid in wanted or engine.running_ctids():
        ct = engine.container(ctid)
        if not ct.exists:
            if wanted:
                raise CtConfigMissing(f"CT {ctid} does not exist")
            continue
        st = status(engine, ct)
        if not st.running and not wanted:
            continue
        run = None
        if st.running and st.state is not None:
            run = Run(ct, st.state, engine.plugins,
                      plugin=engine.plugins.provider("beancounters") or "beancounters")
        blocks.append((ctid, table_of(ct, run)))
    click.echo(json_text(blocks) if as_json else proc_text(blocks), nl=False)
    if as_json:
        click.echo()
    return 0

