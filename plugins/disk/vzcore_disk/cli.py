"""``vzctl quota CTID``: a CT's first-level disk quota as ``vzquota stat`` shows it."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session


@click.command()
@click.argument("ctid")
@click.option("-j", "--json", "as_json", is_flag=True,
              help="JSON: {ctid, diskspace: {usage, softlimit, hardlimit, grace}, diskinodes: ...}.")
@pass_session
def quota(session: Session, ctid: str, as_json: bool) -> int:
    """Show a CT's disk use, soft and hard limits and grace (1K blocks, inodes).

    \b
    The layout is vzquota stat's.  Usage above the soft limit gets '*'; grace is the time
    left before the soft limit acts as the hard one ('none': it does).  Looking also
    enforces: an expired grace is acted on here (see docs/disk.md).  With the second-level
    quota (--quotaugidlimit) a last line counts the user and group IDs with quota entries.
    """
    import json

    from vzcore_disk import layouts, report

    engine = session.engine
    engine.plugins.check_conflicts()
    ct = session.container(ctid)
    ct.require_exists()
    layout = layouts.limiter(ct)
    if layout is not None and ct.private.exists():
        from vzcore_disk import watch

        with engine.lock(ct, "quota"), watch.guard(ct):
            layout.enforce(ct)
    table = report.rows(ct)
    if as_json:
        click.echo(json.dumps({"ctid": ct.ctid, **{
            ("diskspace" if row.resource == "1k-blocks" else "diskinodes"): {
                "usage": row.usage, "softlimit": report._limit(row.softlimit),
                "hardlimit": report._limit(row.hardlimit), "grace": row.grace}
            for row in table}}))
    else:
        click.echo(report.stat_text(table) + report.ugid_text(ct), nl=False)
    return 0
