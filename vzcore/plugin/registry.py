"""The parameters, vzlist fields and commands the active plugins declare, checked for clashes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from vzcore.changes import Change, ChangeSet
from vzcore.errors import InvalidValue, VzError
from vzcore.params import Command, Field, Parameter
from vzcore.plugin.manager import Plugins

if TYPE_CHECKING:
    from vzcore.container import Container

NEEDED = "the least with which a CT still runs its init and a joined command"


class DeclarationConflict(VzError):
    """Two plugins declare the same option, config key, field or command."""

    exit_code = 85


@attrs.define
class Registry:
    """Lookup tables built from the active plugins' registration hooks."""

    parameters: dict[str, Parameter] = attrs.field(factory=dict)
    """option name (without dashes; aliases included) -> parameter"""
    owners: dict[str, str] = attrs.field(factory=dict)
    """config key -> plugin"""
    param_owner: dict[str, str] = attrs.field(factory=dict)
    """parameter name -> plugin"""
    fields: dict[str, Field] = attrs.field(factory=dict)
    field_owner: dict[str, str] = attrs.field(factory=dict)
    commands: dict[str, Command] = attrs.field(factory=dict)
    command_owner: dict[str, str] = attrs.field(factory=dict)

    @classmethod
    def build(cls, plugins: Plugins) -> Registry:
        registry = cls()
        for plugin, params in plugins.call_each("vz_parameters"):
            for param in params:
                registry._add_parameter(plugin, param)
        for plugin, fields in plugins.call_each("vz_list_fields"):
            for field in fields:
                registry._add_field(plugin, field)
        return registry

    @classmethod
    def build_commands(cls, plugins: Plugins, builtin: Iterable[str]) -> Registry:
        registry = cls()
        taken = {name: "vzctl" for name in builtin}
        for plugin, commands in plugins.call_each("vz_commands"):
            for command in commands:
                if command.name in taken:
                    raise DeclarationConflict(
                        f"plugin '{plugin}' declares command '{command.name}', already provided "
                        f"by {taken[command.name]}; disable one of them in vz.conf")
                taken[command.name] = plugin
                registry.commands[command.name] = command
                registry.command_owner[command.name] = plugin
        return registry

    def _add_parameter(self, plugin: str, param: Parameter) -> None:
        for option in (param.name, *param.aliases):
            if option in self.parameters:
                other = self.param_owner[self.parameters[option].name]
                raise DeclarationConflict(
                    f"option --{option} is declared by plugins '{other}' and '{plugin}'; "
                    "disable one of them in vz.conf")
            self.parameters[option] = param
        owner = self.owners.setdefault(param.key, plugin)
        if owner != plugin:
            raise DeclarationConflict(
                f"config key {param.key} is owned by plugins '{owner}' and '{plugin}'; "
                "disable one of them in vz.conf")
        self.param_owner[param.name] = plugin

    def _add_field(self, plugin: str, field: Field) -> None:
        owner = self.field_owner.get(field.name)
        if owner is not None and owner != "core":
            raise DeclarationConflict(
                f"vzlist field '{field.name}' is declared by plugins '{owner}' and '{plugin}'")
        # A plugin's field replaces the core's fallback of the same name (numproc).
        self.fields[field.name] = field
        self.field_owner[field.name] = plugin

    def unique_parameters(self) -> list[Parameter]:
        """Each parameter once (aliases folded), sorted by option name."""
        seen: dict[str, Parameter] = {}
        for param in self.parameters.values():
            seen.setdefault(param.name, param)
        return sorted(seen.values(), key=lambda p: p.name)

    def plan_changes(self, ctid: int, current: Mapping[str, str | None],
                     given: Mapping[str, list[str]], *, verb: str) -> tuple[ChangeSet, dict[str, Any]]:
        """Parse option values into a change set; nothing is changed yet.

        :param current: the keys' current text (CT config over vz.conf).
        :param given: option name -> the texts given on the command line, in order.
        :returns: the change set and the parsed values by option name.
        :raises InvalidValue: naming the CT, the option and what is accepted.
        """
        changes: dict[str, Change] = {}
        parsed: dict[str, Any] = {}
        for option, texts in given.items():  # every value is checked before any merge
            param = self.parameters[option]
            if verb == "create" and not param.on_create:
                raise InvalidValue(f"CT {ctid}: --{option} cannot be given to create; "
                                   f"use 'vzctl set {ctid} --{option} ... --save' afterwards")
            if verb == "set" and not param.on_set:
                raise InvalidValue(f"CT {ctid}: --{option} can only be given to create; "
                                   "destroy and re-create the CT to change it")
            if len(texts) > 1 and not param.multiple:
                raise InvalidValue(f"CT {ctid}: --{option} is given {len(texts)} times; give it once")
            values = []
            for text in texts:
                try:
                    value = param.type.parse(text)
                except ValueError as exc:
                    raise InvalidValue(f"CT {ctid}: invalid value for --{option}: {exc}") from None
                if param.below_minimum(value):
                    raise InvalidValue(f"CT {ctid}: --{option} {text} is below its minimum "
                                       f"{_minimum(param)}, {NEEDED}; give {param.minimum} or more")
                values.append(value)
            parsed[option] = values
        by_name = {self.parameters[option].name: values for option, values in parsed.items()}
        for option, values in parsed.items():
            param = self.parameters[option]
            old = changes[param.key].new if param.key in changes else current.get(param.key)
            try:
                new = param.new_text(old, values, by_name)
            except ValueError as exc:
                raise InvalidValue(f"CT {ctid}: --{option}: {exc}") from None
            first_old = changes[param.key].old if param.key in changes else current.get(param.key)
            changes[param.key] = Change(param.key, first_old, new)
        return ChangeSet({k: c for k, c in changes.items() if c.old != c.new or verb == "create"}), parsed

    def check_minimums(self, ct: Container, *, sample: Path | None = None) -> None:
        """Refuse a CT whose config (or vz.conf, as its default) holds a value below a
        declared parameter's minimum: ``start`` and ``create`` call this before any effect.
        ``sample``: the sample config that ``create`` started the CT's config from.

        A malformed value is left to the owning plugin's ``vz_validate``, which names it.

        :raises InvalidValue: naming the CT, the config key, the minimum and the fix.
        """
        for param in self.unique_parameters():
            text = ct.get(param.key)
            # A key written through a merge (--ram writes PHYSPAGES) is checked through
            # the parameter that owns the key's whole grammar (--physpages).
            if param.minimum is None or param.merge is not None or not text or not text.strip():
                continue
            try:
                value = param.type.parse(text)
            except ValueError:
                continue
            if not param.below_minimum(value):
                continue
            setting = f"--{param.name} {param.minimum} --save' or more"
            if ct.config.get(param.key) is None:
                where, fix = ct.global_config.path, (f"fix it there, or give the CT its own value "
                                                     f"with 'vzctl set {ct.ctid} {setting}")
            elif sample is not None:
                where, fix = sample, "fix the sample"
            else:
                where, fix = ct.config.path, f"fix it with 'vzctl set {ct.ctid} {setting}"
            raise InvalidValue(f"CT {ct.ctid}: {param.key}=\"{text}\" in {where} is below the "
                               f"minimum of --{param.name}, {_minimum(param)}, {NEEDED}; {fix}")


def _minimum(param: Parameter) -> str:
    first, second = getattr(param.type, "names", ("barrier", "limit"))
    each = f" ({first}:{second})" if ":" in (param.minimum or "") else ""
    return f"{param.minimum}{each}"
