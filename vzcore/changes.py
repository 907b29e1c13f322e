"""The config changes a verb makes, as plugins see them in ``vz_validate`` and ``vz_apply``."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs


@attrs.frozen
class Change:
    """One config key before and after a verb (``None``: not set)."""

    key: str
    old: str | None
    new: str | None


@attrs.frozen
class ChangeSet(Mapping[str, Change]):
    """The keys a verb changes, with old and new text; plugins pick the keys they own."""

    changes: Mapping[str, Change] = attrs.field(factory=dict)

    def __getitem__(self, key: str) -> Change:
        return self.changes[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def new_values(self) -> dict[str, str | None]:
        return {key: change.new for key, change in self.changes.items()}
