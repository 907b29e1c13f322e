"""``vzctl convert CTID --layout NAME``."""

from __future__ import annotations

import click

from vzcore.cli.session import Session, pass_session


@click.command()
@click.argument("ctid")
@click.option("--layout", required=True, metavar="NAME",
              help="the layout to move the CT's files into (simfs, image, btrfs, overlay)")
@click.option("--diskspace", metavar="S[:H]", help="the new area's disk space (image: its size)")
@click.option("--diskinodes", metavar="S[:H]", help="the new area's inodes (image)")
@pass_session
def convert(session: Session, ctid: str, layout: str, diskspace: str | None,
            diskinodes: str | None) -> int:
    """Move a stopped CT's files into another layout.

    \b
    The new area is made beside the old one, filled, and compared with it file by file;
    only then does it replace the old one, which is removed.  A convert that was killed
    is finished or undone by the next 'vzctl convert' of the CT.
    """
    from vzcore.errors import InvalidSyntax
    from vzcore_disk import convert as converting
    from vzcore_disk.limits import DISKINODES, DISKSPACE

    engine = session.engine
    engine.plugins.check_conflicts()
    ct = session.container(ctid)
    overrides: dict[str, str | None] = {}
    for key, grammar, text in (("DISKSPACE", DISKSPACE, diskspace),
                               ("DISKINODES", DISKINODES, diskinodes)):
        if text is not None:
            try:
                overrides[key] = grammar.to_conf(grammar.parse(text))
            except ValueError as exc:
                raise InvalidSyntax(f"CT {ct.ctid}: --{key.lower()} {text!r}: {exc}") from None
    converting.convert(engine, ct, layout, overrides)
    return 0
