"""Typed plugin records: what each plugin keeps in a CT's state file.

A plugin that must find again what it made (links, view files, applied settings) declares
a frozen attrs class deriving from :class:`PluginRecord` as :attr:`PluginInfo.record
<vzcore.plugin.PluginInfo.record>`.  The state file stores it under the plugin's name as
``{"version": N, "record": {...}}``; :meth:`PluginRecord.to_json` and
:meth:`PluginRecord.from_json` are generated from the attrs fields (override them for
fields JSON cannot hold as they are).  A record of another version is converted by
:meth:`PluginRecord.upgrade` or refused, by plugin name and with the fix: never misread.
Version 0 is the untyped dict of the release before records were typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, TypeVar

import attrs

from vzcore.errors import VzError

PREVIOUS_RELEASE = 0
"""The version of a record in a state file written before records had versions."""

R = TypeVar("R", bound="PluginRecord")


class RecordError(VzError):
    """A plugin's record in a state file that this plugin version cannot read."""

    exit_code = 85  # VZ_INVALID_CONFIG: the state file is not what this install reads


def _plain(_inst: Any, _field: Any, value: Any) -> Any:
    """JSON-friendly values: tuples and sets become lists (sets sorted, for stable files)."""
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class PluginRecord:
    """Base of a plugin's record; subclass it as an ``@attrs.frozen`` class.

    :cvar VERSION: bump it when a field changes meaning or shape, and teach
        :meth:`upgrade` the old shape (or leave it refusing).
    """

    VERSION: ClassVar[int] = 1

    def to_json(self) -> dict[str, Any]:
        """The fields as JSON (nested attrs values as objects, tuples and sets as lists)."""
        return attrs.asdict(self, value_serializer=_plain)  # type: ignore[arg-type]

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        """The record from :meth:`to_json`'s output; unknown or missing fields raise.
        Field converters turn lists back into tuples and nested records."""
        return cls(**data)

    @classmethod
    def upgrade(cls, version: int, data: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """``data`` of an older ``version`` (0: the previous release's dict) in the shape of
        :data:`VERSION`, or ``None`` when it cannot be converted (the record is refused)."""
        return None


def encode(record: PluginRecord) -> dict[str, Any]:
    """The state file's entry for ``record``."""
    return {"version": type(record).VERSION, "record": record.to_json()}


def decode(cls: type[R], entry: Mapping[str, Any], *, ctid: int, plugin: str) -> R:
    """The record stored in ``entry``: upgraded when older, refused when it cannot be."""
    version = int(entry.get("version", PREVIOUS_RELEASE))
    data = entry.get("record", {})
    if version > cls.VERSION:
        raise RecordError(
            f"CT {ctid}: the {plugin} plugin's record has version {version}, newer than this "
            f"{plugin} plugin reads ({cls.VERSION}); reinstall the {plugin} plugin version that "
            f"started the CT to stop it, or drop the record with 'vzctl stop --force {ctid}'")
    if version < cls.VERSION:
        upgraded = cls.upgrade(version, data)
        if upgraded is None:
            raise RecordError(
                f"CT {ctid}: the {plugin} plugin cannot read its record of version {version} "
                f"(it reads {cls.VERSION}); stop the CT with the {plugin} plugin version that "
                f"started it, or drop the record with 'vzctl stop --force {ctid}'")
        data = upgraded
    try:
        return cls.from_json(data)
    except (TypeError, ValueError, KeyError) as exc:
        raise RecordError(
            f"CT {ctid}: the {plugin} plugin's record (version {version}) does not match its "
            f"fields ({exc}); drop it with 'vzctl stop --force {ctid}'") from exc
