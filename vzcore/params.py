"""What plugins declare: parameters, vzlist fields and CLI commands.

A :class:`Parameter` is one ``vzctl create/set`` option and the config key it writes.  The
core builds the command-line options and their ``--help`` from these records, parses and
validates every value before the first side effect, and hands plugins a
:class:`vzcore.changes.ChangeSet` that says, per config key, the old and the new text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    from vzcore.values import ValueType

Merge = Callable[..., str | None]
"""How an option's values change its config key: ``(old text, parsed values) -> new text``.

A parameter with a ``context`` gets a third argument: the parsed values of the options it
names, given in the same command (an empty list for those not given).  Raise
:class:`ValueError` to refuse the combination."""

NAME_PATTERN = r"[a-z][a-z0-9_-]*"


def _replace(param: Parameter) -> Merge:
    return lambda _old, values: param.type.to_conf(values[-1])


@attrs.frozen(kw_only=True)
class Parameter:
    """One option of ``vzctl set`` (and ``create`` when ``on_create``).

    :ivar name: the long option without dashes (``numproc`` gives ``--numproc``).
    :ivar key: the config key it writes (``NUMPROC``); several options may write one key
        (``--ipadd`` and ``--ipdel`` both change ``IP_ADDRESS``).
    :ivar type: the value grammar (:mod:`vzcore.values`).
    :ivar help: one sentence for ``--help`` and the parameter reference.
    :ivar live: whether a running CT can take the change without a restart.
    :ivar multiple: whether the option may be given several times in one command.
    :ivar merge: how the values change the key's text; the default replaces it.
    :ivar aliases: other long option names (``ip`` for ``ipadd``).
    :ivar short: a one-letter option (``p`` for ``numproc``), as vzctl has them.
    :ivar on_create: whether ``vzctl create`` accepts it too.
    :ivar on_set: whether ``vzctl set`` accepts it (False: fixed at create, as the ID range
        or the layout, which the private area depends on).
    :ivar host_key: the ``vz.conf`` key that holds the host's own value when the option is
        given to CT 0, the host (``vzctl set 0 --cpuunits N`` writes ``VE0CPUUNITS``, as in
        OpenVZ); ``None``: the option is for CTs only.
    :ivar context: other options (names) whose values the merge needs: ``--mac`` changes
        the interface that ``--ifname`` names in the same command.
    :ivar minimum: the smallest value, as option text in the parameter's own grammar
        (``16``; ``0:32M`` for a pair: each part is compared), with which a CT can still
        run its init and a joined command.  ``set`` and ``create`` refuse a smaller value
        (exit 21), and so does ``start`` when a config holds one; ``--help`` and
        docs/parameters.md show it.  ``None``: the grammar alone bounds the value.
    :ivar saved: False for an action that is never written to the config (``--userpasswd``):
        ``set`` applies it to a stopped CT too (mounting its root for the time of
        ``vz_apply``), with or without ``--save``, and ``--save`` leaves its key out.
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(NAME_PATTERN))
    key: str = attrs.field(validator=attrs.validators.matches_re(r"[A-Z][A-Z0-9_]*"))
    type: ValueType[Any]
    help: str
    live: bool = False
    multiple: bool = False
    merge: Merge | None = None
    aliases: tuple[str, ...] = ()
    short: str | None = None
    on_create: bool = False
    on_set: bool = True
    host_key: str | None = attrs.field(
        default=None,
        validator=attrs.validators.optional(attrs.validators.matches_re(r"[A-Z][A-Z0-9_]*")))
    context: tuple[str, ...] = ()
    minimum: str | None = None
    saved: bool = True

    def __attrs_post_init__(self) -> None:
        if self.minimum is not None:
            self.type.parse(self.minimum)  # a declaration error, caught by the plugin's tests

    def below_minimum(self, value: Any) -> bool:
        """Whether a parsed ``value`` of this parameter is smaller than :attr:`minimum`."""
        from vzcore.values import below

        return self.minimum is not None and below(value, self.type.parse(self.minimum))

    @property
    def options(self) -> list[str]:
        names = [f"--{self.name}"] + [f"--{alias}" for alias in self.aliases]
        if self.short:
            names.append(f"-{self.short}")
        return names

    def new_text(self, old: str | None, values: Sequence[Any],
                 others: Mapping[str, Sequence[Any]] | None = None) -> str | None:
        """The key's new config text after this option's ``values``; ``others`` holds the
        parsed values of every option of the command (only ``context`` ones are passed)."""
        merge = self.merge or _replace(self)
        if self.context:
            given = others or {}
            return merge(old, values, {name: list(given.get(name, ())) for name in self.context})
        return merge(old, values)


@attrs.frozen(kw_only=True)
class Field:
    """A vzlist column / JSON field that a plugin fills in from :func:`vz_collect`.

    :ivar name: the field name for ``-o`` and the JSON key (``numproc``, ``ip``).
    :ivar header: the table header (``NPROC``).
    :ivar width: the column width; negative means left-aligned (vzlist's ``%-15s``).
    :ivar help: one line for ``vzlist -L`` and docs.
    :ivar stopped: whether the value is meaningful for a stopped CT (else ``-`` / null).
    :ivar kind: how vzlist prints it: ``text``, ``number``, ``bool``, ``list``,
        ``duration`` (seconds as ``000d00h:00m:00s``), ``ubc`` (a beancounter object;
        ``.m .b .l .f`` suffixes pick maxheld, barrier, limit, failcnt) or ``quota`` (a
        usage object; ``.s .h`` pick soft and hard limit).
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(r"[a-z][a-z0-9_.%]*"))
    header: str
    width: int
    help: str
    stopped: bool = True
    kind: str = attrs.field(default="text", validator=attrs.validators.in_(
        ("text", "number", "bool", "list", "duration", "ubc", "quota", "laverage")))


@attrs.frozen(kw_only=True)
class Command:
    """A ``vzctl`` subcommand contributed by a plugin, loaded only when it is invoked.

    :ivar target: ``"module:attribute"`` naming a :class:`click.Command`.
    """

    name: str = attrs.field(validator=attrs.validators.matches_re(r"[a-z][a-z0-9-]*"))
    target: str = attrs.field(validator=attrs.validators.matches_re(r"[\w.]+:\w+"))
    summary: str
