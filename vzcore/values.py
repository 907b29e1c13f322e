"""Value grammars of vzctl options and config keys (pure; no I/O).

Each type turns option text into a Python value (:meth:`parse`, raising :class:`ValueError`
with a message that says what is accepted) and a value into config text (:meth:`to_conf`).
The grammars are OpenVZ's: sizes with ``K/M/G/T`` (binary), ``P`` (pages) and ``B``
(bytes) suffixes, fractions (``2.5G``), ``unlimited``; pairs ``barrier[:limit]`` and
``soft[:hard]``; ``yes|no``; space-separated lists.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, Protocol, TypeVar

import attrs

LONG_MAX = 2**63 - 1
"""What OpenVZ stores and prints for ``unlimited``."""

PAGE_SIZE = 4096

_SUFFIX_BYTES = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "b": 1, "p": PAGE_SIZE}
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)([kmgtbpKMGTBP]?)$")

T = TypeVar("T")


class ValueType(Protocol[T]):
    """The grammar of one parameter: text in, value out, and back to config text."""

    @property
    def metavar(self) -> str:
        """How ``--help`` shows the value (``N``, ``B[:L]``, ``yes|no``)."""
        ...

    def parse(self, text: str) -> T:
        """Parse option or config text; raise ValueError saying what is accepted."""
        ...

    def to_conf(self, value: T) -> str:
        """Render ``value`` as it is written into a config file."""
        ...


@attrs.frozen
class Size:
    """A count in ``unit`` bytes (1 = bytes, 4096 = pages, 1024 = 1K blocks, 0 = items).

    ``unit == 0`` means a plain count: suffixes are refused (OpenVZ's ``num*`` rule).
    """

    unit: int = 1
    metavar: str = "N"

    def parse(self, text: str) -> int:
        text = text.strip()
        if text == "unlimited":
            return LONG_MAX
        match = _NUMBER.match(text)
        if not match:
            raise ValueError(f"{text!r} is not a number{self._hint()}")
        number, suffix = match.groups()
        if self.unit == 0:
            if suffix or "." in number:
                raise ValueError(f"{text!r}: a count takes a whole number without a suffix")
            return min(int(number), LONG_MAX)
        try:
            amount = Decimal(number)
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise ValueError(f"{text!r} is not a number") from exc
        if suffix:
            amount = amount * _SUFFIX_BYTES[suffix.lower()] / self.unit
        elif "." in number:
            raise ValueError(f"{text!r}: a fraction needs a unit suffix (K, M, G, T, P or B)")
        return min(int(amount), LONG_MAX)

    def _hint(self) -> str:
        if self.unit == 0:
            return " (expected a whole number or 'unlimited')"
        return " (expected a number with an optional K, M, G, T, P or B suffix, or 'unlimited')"

    def to_conf(self, value: int) -> str:
        return "unlimited" if value >= LONG_MAX else str(value)


@attrs.frozen
class Pair:
    """``barrier:limit`` (beancounters) or ``soft:hard`` (disk quota)."""

    barrier: int
    limit: int

    @property
    def soft(self) -> int:
        return self.barrier

    @property
    def hard(self) -> int:
        return self.limit


@attrs.frozen
class PairOf:
    """``value`` or ``first:second``, each a :class:`Size`; first must not exceed second."""

    size: Size
    names: tuple[str, str] = ("barrier", "limit")
    metavar: str = "B[:L]"

    def parse(self, text: str) -> Pair:
        parts = text.split(":")
        if len(parts) > 2 or not all(p.strip() for p in parts):
            raise ValueError(f"{text!r} is not {self.names[0]}[:{self.names[1]}]")
        first = self.size.parse(parts[0])
        second = self.size.parse(parts[-1])
        if first > second:
            raise ValueError(
                f"{self.names[0]} {parts[0]} is above {self.names[1]} {parts[-1]}; "
                f"give {self.names[0]} <= {self.names[1]}"
            )
        return Pair(first, second)

    def to_conf(self, value: Pair) -> str:
        return f"{self.size.to_conf(value.barrier)}:{self.size.to_conf(value.limit)}"


def below(value: Any, minimum: Any) -> bool:
    """Whether parsed ``value`` is below parsed ``minimum`` of the same grammar: a number,
    or either part of a pair (``barrier:limit``, ``soft:hard``).  Values of other grammars
    (text, lists, CPU masks) have no order and are never below."""
    if isinstance(value, Pair) and isinstance(minimum, Pair):
        return value.barrier < minimum.barrier or value.limit < minimum.limit
    if isinstance(value, bool) or isinstance(minimum, bool):
        return False
    if isinstance(value, int) and isinstance(minimum, int):
        return value < minimum
    return False


@attrs.frozen
class Integer:
    """A whole number in ``[minimum, maximum]``."""

    minimum: int = 0
    maximum: int = LONG_MAX
    metavar: str = "N"

    def parse(self, text: str) -> int:
        try:
            number = int(text.strip(), 10)
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if not self.minimum <= number <= self.maximum:
            raise ValueError(f"{number} is outside {self.minimum}..{self.maximum}")
        return number

    def to_conf(self, value: int) -> str:
        return str(value)


@attrs.frozen
class YesNo:
    metavar: str = "yes|no"

    def parse(self, text: str) -> bool:
        lowered = text.strip().lower()
        if lowered in ("yes", "on", "true", "1"):
            return True
        if lowered in ("no", "off", "false", "0"):
            return False
        raise ValueError(f"{text!r}: expected yes or no")

    def to_conf(self, value: bool) -> str:
        return "yes" if value else "no"


@attrs.frozen
class Choice:
    choices: tuple[str, ...]

    @property
    def metavar(self) -> str:
        return "|".join(self.choices)

    def parse(self, text: str) -> str:
        if text not in self.choices:
            raise ValueError(f"{text!r}: expected one of {', '.join(self.choices)}")
        return text

    def to_conf(self, value: str) -> str:
        return value


@attrs.frozen
class Text:
    """Free text, optionally restricted by a regular expression."""

    pattern: str | None = None
    explanation: str = ""
    metavar: str = "TEXT"

    def parse(self, text: str) -> str:
        if "\n" in text or "\0" in text:
            raise ValueError("the value must be one line of text")
        if self.pattern is not None and not re.fullmatch(self.pattern, text):
            raise ValueError(f"{text!r}: {self.explanation or 'malformed'}")
        return text

    def to_conf(self, value: str) -> str:
        return value


HOSTNAME = Text(
    # RFC 1123 labels; at most 64 characters in all, the kernel's limit for a host name
    # (sethostname(2), __NEW_UTS_LEN), which every start sets
    pattern=r"(?=.{1,64}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?",
    explanation="a host name is letters, digits and '-' in dot-separated labels of at most "
                "63, neither starting nor ending with '-', at most 64 characters in all",
    metavar="NAME",
)


@attrs.frozen
class ListOf(Generic[T]):
    """A space-separated list of ``item`` values (IP_ADDRESS, NAMESERVER, CAPABILITY...)."""

    item: Any
    metavar: str = "LIST"

    def parse(self, text: str) -> tuple[T, ...]:
        return tuple(self.item.parse(word) for word in text.split())

    def to_conf(self, value: Sequence[T]) -> str:
        return " ".join(self.item.to_conf(v) for v in value)
