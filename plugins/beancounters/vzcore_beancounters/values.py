"""Value grammars of this plugin's options that :mod:`vzcore.values` does not have."""

from __future__ import annotations

from decimal import Decimal

import attrs

from vzcore_beancounters.limits import parse_overcommit


@attrs.frozen
class Overcommit:
    """``--vm_overcommit``: a non-negative number such as ``1.5``."""

    metavar: str = "N"

    def parse(self, text: str) -> Decimal:
        return parse_overcommit(text)

    def to_conf(self, value: Decimal) -> str:
        return format(value.normalize(), "f")
