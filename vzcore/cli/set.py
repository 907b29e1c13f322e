"""``vzctl set CTID [options] [--save]``, with OpenVZ's admin options ``--applyconfig``,
``--applyconfig_map``, ``--setmode``, ``--reset_ub`` and ``--force``."""

from __future__ import annotations

from contextlib import nullcontext

import click

from vzcore.cli.options import ParameterCommand, given_options
from vzcore.cli.session import Session, pass_session
from vzcore.container import names_lock
from vzcore.errors import InvalidSyntax
from vzcore.lifecycle.setparams import set_parameters


@click.command(cls=ParameterCommand)
@click.argument("ctid")
@click.option("--save", is_flag=True, help="Also write the changes to the CT's config.")
@click.option("--applyconfig", metavar="NAME",
              help="Set the parameters of sample config ve-NAME.conf-sample (all but HOSTNAME, "
                   "IP_ADDRESS, OSTEMPLATE, VE_ROOT, VE_PRIVATE, NAME); options given win.")
@click.option("--applyconfig_map", type=click.Choice(["name"]),
              help="With --applyconfig: apply only the sample's NAME (the CT's name).")
@click.option("--setmode", type=click.Choice(["restart", "ignore"]),
              help="For options that need a restart of a running CT: restart it now "
                   "(with --save), or ignore (no warning).")
@click.option("--reset_ub", is_flag=True,
              help="Alone: give the running CT its config's beancounters again.")
@click.option("--force", is_flag=True,
              help="With --save: save even when the running CT cannot take the change live.")
@pass_session
@click.pass_context
def set_(ctx: click.Context, session: Session, ctid: str, save: bool, applyconfig: str | None,
         applyconfig_map: str | None, setmode: str | None, reset_ub: bool, force: bool) -> None:
    """Change CT CTID's parameters: at once on a running CT, and in its config with --save.

    \b
    Examples:
      vzctl set 101 --hostname web1 --save
      vzctl set 101 --numproc 400:400 --ram 512M --save
      vzctl set 101 --name web --save        (then: vzctl exec web hostname)
      vzctl set 101 --applyconfig vswap-256m --save
      vzctl set 101 --capability sys_time:on --save --setmode restart
      vzctl set 101 --reset_ub
      vzctl set 0 --cpuunits 2000 --save     (CT 0 is the host itself)
    """
    given = given_options(ctx)
    ct = session.container(ctid)
    if reset_ub:
        if given or save or applyconfig or applyconfig_map or setmode or force:
            raise InvalidSyntax(f"CT {ct.ctid}: --reset_ub takes no other option; run it alone")
        from vzcore.lifecycle.admin import reset_beancounters

        reset_beancounters(session.engine, ct)
        return
    if applyconfig_map and not applyconfig:
        raise InvalidSyntax(f"CT {ct.ctid}: --applyconfig_map needs --applyconfig NAME")
    if force and not save:
        raise InvalidSyntax(f"CT {ct.ctid}: --force only acts with --save; add --save")
    if setmode == "restart" and not save:
        raise InvalidSyntax(f"CT {ct.ctid}: --setmode restart loses unsaved changes in the "
                            "restart; add --save")
    if applyconfig:
        from vzcore.lifecycle.admin import sample_options

        sample = sample_options(session.engine, ct, applyconfig,
                                only_name=applyconfig_map == "name")
        given = {**sample, **given}  # the options given on the command line win
    if not given:
        raise click.UsageError("no parameter to set; see 'vzctl set --help'")
    if "name" in given and not save:  # a name lives only in the config, as in OpenVZ
        raise InvalidSyntax(f"CT {ct.ctid}: --name is kept in the CT's config only; "
                            "add --save")
    with names_lock(session.engine.lock_dir) if "name" in given else nullcontext():
        restart = set_parameters(session.engine, ct, given, save=save, setmode=setmode,
                                 force=force)
    if restart and setmode == "restart":
        from vzcore.lifecycle.start import start as start_ct
        from vzcore.lifecycle.stop import stop as stop_ct

        session.say(f"Restarting CT {ct.ctid} for {', '.join(restart)}")
        stop_ct(session.engine, ct)
        start_ct(session.engine, session.engine.container(ct.ctid))
