"""``vzctl set CTID [options] [--save]``."""

from __future__ import annotations

import click

from vzcore.cli.options import ParameterCommand, given_options
from vzcore.cli.session import Session, pass_session
from vzcore.errors import InvalidSyntax
from vzcore.lifecycle.setparams import set_parameters


@click.command(cls=ParameterCommand)
@click.argument("ctid")
@click.option("--save", is_flag=True, help="Also write the changes to the CT's config.")
@pass_session
@click.pass_context
def set_(ctx: click.Context, session: Session, ctid: str, save: bool) -> None:
    """Change CT CTID's parameters: at once on a running CT, and in its config with --save.

    \b
    Examples:
      vzctl set 101 --hostname web1 --save
      vzctl set 101 --numproc 400:400 --ram 512M --save
      vzctl set 101 --name web --save        (then: vzctl exec web hostname)
      vzctl set 0 --cpuunits 2000 --save     (CT 0 is the host itself)
    """
    given = given_options(ctx)
    if not given:
        raise click.UsageError("no parameter to set; see 'vzctl set --help'")
    ct = session.container(ctid)
    if "name" in given and not save:  # a name lives only in the config, as in OpenVZ
        raise InvalidSyntax(f"CT {ct.ctid}: --name is kept in the CT's config only; "
                            "add --save")
    set_parameters(session.engine, ct, given, save=save)
