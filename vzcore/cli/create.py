"""``vzctl create CTID [--ostemplate NAME] [--config NAME] [options]``."""

from __future__ import annotations

from contextlib import nullcontext

import click

from vzcore.cli.options import ParameterCommand, given_options
from vzcore.cli.session import Session, pass_session
from vzcore.container import FIRST_USER_CTID, is_ctid_text, names_lock
from vzcore.errors import InvalidSyntax
from vzcore.lifecycle.create import create as create_ct


@click.command(cls=ParameterCommand, for_create=True)
@click.argument("ctid")
@click.option("--config", "config_sample", metavar="NAME",
              help="Start from /etc/vz/conf/ve-NAME.conf-sample (default: CONFIGFILE in vz.conf).")
@pass_session
@click.pass_context
def create(ctx: click.Context, session: Session, ctid: str, config_sample: str | None) -> None:
    """Create CT CTID: write its config and populate its private area from a template.

    \b
    Example:
      vzctl create 101 --ostemplate busybox --hostname ct101
    """
    if not is_ctid_text(ctid):  # a name belongs to an existing CT; a new one needs its ID
        raise InvalidSyntax(f"vzctl create needs the new CT's ID (a number from "
                            f"{FIRST_USER_CTID}), not {ctid!r}; name it with --name")
    ct = session.container(ctid)
    given = given_options(ctx)
    with names_lock(session.engine.lock_dir) if "name" in given else nullcontext():
        create_ct(session.engine, ct, given, config_sample=config_sample)
