"""Which devices a CT may use: the default allow list and the grants, as rules (pure).

A rule is the devices cgroup's own triple, ``TYPE MAJOR:MINOR ACCESS`` (``c 1:3 rwm``,
``c 136:* rw``, ``b *:* m``), with ``a`` for both types and ``*`` for any number.  The same
rules feed both enforcement paths: cgroup v1's ``devices.allow``/``devices.deny`` files
(:func:`v1_steps`) and cgroup v2's BPF device program (:mod:`vzcore_devices.program`).
Everything not allowed is denied.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import attrs

from vzcore.linux.devnodes import STANDARD


@attrs.frozen
class Rule:
    """Allow ``access`` (a subset of ``rwm``) to devices of ``kind`` (``c``, ``b``, ``a``)
    with numbers ``major``/``minor`` (``None``: any)."""

    kind: str
    major: int | None
    minor: int | None
    access: str

    @property
    def key(self) -> tuple[str, int | None, int | None]:
        return (self.kind, self.major, self.minor)

    def text(self) -> str:
        """``c 1:3 rwm``, as the devices cgroup reads and writes it."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.kind} {major}:{minor} {self.access}"

    @classmethod
    def parse(cls, text: str) -> Rule:
        kind, numbers, access = text.split()
        major, minor = numbers.split(":")
        return cls(kind, None if major == "*" else int(major),
                   None if minor == "*" else int(minor), access)

    def allows(self, kind: str, major: int, minor: int, access: str) -> bool:
        """Whether this rule lets a request of ``access`` to device ``kind major:minor``."""
        return (self.kind in ("a", kind) and self.major in (None, major)
                and self.minor in (None, minor) and set(access) <= set(self.access))


def _char(major: int, minor: int | None, access: str = "rwm") -> Rule:
    return Rule("c", major, minor, access)


DEFAULT: tuple[Rule, ...] = (
    # mknod of any node, as OpenVZ, LXC and Docker allow it: a node that is made cannot be
    # opened unless a rule below allows it.  (seccomp refuses most mknod calls anyway, and a
    # user namespace's root cannot mknod at all.)
    Rule("c", None, None, "m"),
    Rule("b", None, None, "m"),
    # null, zero, full, random, urandom, tty, console, ptmx, and pts/*: the CT's own devpts
    *(_char(d.major, d.minor) for d in STANDARD),
)
"""The default allow list of every CT, in both profiles (docs/devices.md)."""


def grant(kind: str, major: int, minor: int | None, access: str) -> Rule:
    """A grant of ``access`` (``r``, ``w``, ``rw``): the node may be opened so, and made."""
    return Rule(kind, major, minor, access + "m")


def merged(rules: Iterable[Rule]) -> list[Rule]:
    """One rule per (kind, major, minor), with the union of their access, sorted."""
    access: dict[tuple[str, int | None, int | None], set[str]] = {}
    for rule in rules:
        access.setdefault(rule.key, set()).update(rule.access)
    return sorted((Rule(k, ma, mi, "".join(c for c in "rwm" if c in a))
                   for (k, ma, mi), a in access.items()), key=_order)


def _order(rule: Rule) -> tuple[str, int, int]:
    # wildcards (None) first; the order is only for stable files and programs
    return (rule.kind, -1 if rule.major is None else rule.major,
            -1 if rule.minor is None else rule.minor)


def allowed(rules: Sequence[Rule], kind: str, major: int, minor: int, access: str) -> bool:
    """The verdict the kernel gives (the reference the program is tested against): some
    single rule must allow every requested access."""
    return any(rule.allows(kind, major, minor, access) for rule in rules)


def v1_steps(old: Sequence[Rule] | None, new: Sequence[Rule]) -> list[tuple[str, str]]:
    """The writes (``devices.deny``/``devices.allow``, rule text) that take a v1 devices
    group from ``old`` to ``new`` (``None``: a new group, which allows everything).

    Every deny comes before every allow, so the group allows at each moment a subset of
    what ``old`` allowed and, once done, exactly ``new``: never more than the old or the
    new set.  A deny removes access bits only from the exception with the same type and
    numbers, which is why the rules are compared per (kind, major, minor).
    """
    if old is None:
        return [("devices.deny", "a")] + [("devices.allow", r.text()) for r in merged(new)]
    before = {r.key: set(r.access) for r in merged(old)}
    after = {r.key: set(r.access) for r in merged(new)}
    steps: list[tuple[str, str]] = []
    for key in before:
        gone = before[key] - after.get(key, set())
        if gone:
            steps.append(("devices.deny", _text(key, gone)))
    for key in after:
        added = after[key] - before.get(key, set())
        if added:
            steps.append(("devices.allow", _text(key, added)))
    return steps


def _text(key: tuple[str, int | None, int | None], access: set[str]) -> str:
    return Rule(*key, "".join(c for c in "rwm" if c in access)).text()
