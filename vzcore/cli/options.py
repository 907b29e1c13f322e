"""Commands whose options come from the plugins' parameter declarations."""

from __future__ import annotations

from typing import Any

import click

from vzcore.cli.session import Session
from vzcore.params import Parameter

GIVEN = "vzcore.given"
"""``ctx.meta`` key: option name -> texts, in the order the options were given."""


def _remember(param: Parameter) -> Any:
    def callback(ctx: click.Context, _option: click.Parameter, values: tuple[str, ...]) -> None:
        if values:
            ctx.meta.setdefault(GIVEN, {})[param.name] = list(values)

    return callback


def option_for(param: Parameter, hidden: bool) -> click.Option:
    """The click option of a declared parameter (always ``multiple`` so repeats are seen).

    ``hidden`` options are parsed but not shown in ``--help``: the verb refuses them with
    a message that says which verb takes them (better than "no such option").
    """
    help_text = param.help + ("" if param.live else " [restart needed on a running CT]")
    if param.minimum is not None:
        help_text += f" [minimum {param.minimum}]"
    if param.host_key:
        help_text += f" [CT 0: the host's own value, saved as {param.host_key} in vz.conf]"
    return click.Option(
        [*param.options, "p_" + param.name.replace("-", "_")],
        multiple=True,
        metavar=param.type.metavar,
        help=help_text,
        hidden=hidden,
        expose_value=False,
        callback=_remember(param),
    )


class ParameterCommand(click.Command):
    """A click command that adds an option for every parameter the active plugins declare
    that this verb accepts (``on_create`` for create, ``on_set`` for set)."""

    def __init__(self, *args: Any, for_create: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.for_create = for_create

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        session = ctx.find_object(Session)
        if session is None:
            return params
        declared = [option_for(p, hidden=not (p.on_create if self.for_create else p.on_set))
                    for p in session.engine.registry.unique_parameters()]
        help_option = params[-1:] if params and params[-1].name == "help" else []
        base = params[:-1] if help_option else params
        return [*base, *declared, *help_option]


def given_options(ctx: click.Context) -> dict[str, list[str]]:
    return dict(ctx.meta.get(GIVEN, {}))
