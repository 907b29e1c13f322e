"""The area checks of :mod:`vzcore.areas` applied to one CT, its vz.conf and the other CTs.

Every verb that mounts, unmounts, populates or removes a CT's ``VE_PRIVATE`` or
``VE_ROOT`` calls :func:`check_areas` before its first effect; ``destroy`` also calls
:func:`check_removable`.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterable, Iterator

from vzcore import areas
from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import ConfigError, DestroyError, InvalidValue, VzError
from vzcore.paths import DEFAULTS, expand_veid

KEYS = ("VE_PRIVATE", "VE_ROOT")
OPTIONS = {"VE_PRIVATE": "--private", "VE_ROOT": "--root"}


class _Installation:
    """What every area is checked against, resolved once per check (not once per CT)."""

    def __init__(self, engine: Engine, ct: Container) -> None:
        paths = engine.paths
        dirs = [paths.vz_conf.parent, paths.conf_dir, paths.run_dir, engine.lock_dir]
        template = areas.normalize(ct.get("TEMPLATE") or DEFAULTS["TEMPLATE"])
        if template is not None:
            dirs.append(paths.host(template))
        self.own_dirs = [os.path.realpath(d) for d in dirs]
        self.prefix = os.path.realpath(paths.prefix)

    def path_problem(self, ct: Container, key: str) -> tuple[str | None, str]:
        """What is wrong with the path of ``ct``'s ``key`` by itself (no other CT, no mark),
        and the path resolved on the host (empty when it has none)."""
        text = ct.area_text(key)
        bases = (areas.fixed_base(ct.area_pattern(key)), areas.fixed_base(DEFAULTS[key]))
        problem = areas.config_problem(text, bases)
        if problem is not None:
            return problem, ""
        resolved = os.path.realpath(ct.paths.host(text))
        return areas.host_problem(resolved, self.prefix, self.own_dirs), resolved

    def problem(self, ct: Container, key: str) -> tuple[str | None, str]:
        """As :meth:`path_problem`, and also refuse an area that is another CT's."""
        problem, resolved = self.path_problem(ct, key)
        if problem is None:
            claimed = _claimed_by(ct, key)
            if claimed is not None and claimed != str(ct.ctid):
                how = "vzcore's mark on it" if key == "VE_PRIVATE" and areas.read_marker(
                    ct.paths.host(ct.area_text(key))) is not None else "vz.conf's pattern"
                problem = f"is CT {claimed}'s area (by {how})"
        return problem, resolved


def _claimed_by(ct: Container, key: str) -> str | None:
    """The CT an area belongs to by vzcore's mark (private areas), else by vz.conf's pattern
    (``/vz/private/102`` is CT 102's), else ``None``."""
    text = ct.area_text(key)
    if key == "VE_PRIVATE":
        marker = areas.read_marker(ct.paths.host(text))
        if marker is not None:
            return marker
    owner = _pattern_owner(ct, key)
    return None if owner is None else str(owner)


def _pattern_owner(ct: Container, key: str) -> int | None:
    """The CT whose area vz.conf's pattern, or else OpenVZ's default, puts at ``ct``'s path."""
    text = ct.area_text(key)
    owner = areas.pattern_ctid(ct.area_pattern(key), text)
    return owner if owner is not None else areas.pattern_ctid(DEFAULTS[key], text)


def _fix(ct: Container, key: str, creating: bool) -> str:
    pattern = ct.area_pattern(key)
    if areas.fixed_base(pattern) in (None, "/"):
        return (f"set {key} in {ct.global_config.path} to a pattern below a directory of its "
                f"own, such as {DEFAULTS[key]}")
    example = expand_veid(pattern, ct.ctid)
    if creating:
        return f"give {OPTIONS[key]} a path of the CT's own below vz.conf's base, such as {example}"
    return f"set {key} in {ct.config.path} to the CT's own path, such as {example}"


def check_areas(engine: Engine, ct: Container, *, creating: bool = False,
                keys: tuple[str, ...] = KEYS) -> None:
    """Refuse ``ct``'s ``VE_PRIVATE``/``VE_ROOT`` unless each is acceptable by itself
    (:mod:`vzcore.areas`), they do not overlap each other, and neither overlaps an area of
    another CT.  Two other CTs cannot block this one: one whose own path is unusable (every
    verb refuses it), and one whose path lies inside an area that is provably this CT's
    (by its mark or vz.conf's pattern; that CT is refused by its own checks).  Marks only
    ever refuse: a mark a CT's root forged (privileged profile) cannot hide its area from
    this check.  ``keys``: the paths the verb uses (stop and umount touch only
    ``VE_ROOT``, so a mark a privileged CT's root changed cannot keep the admin from
    stopping it).

    Raises :class:`~vzcore.errors.ConfigError` (85), or ``InvalidValue`` (21) when
    ``creating`` (the paths are the new CT's parameters).
    """
    error: type[VzError] = InvalidValue if creating else ConfigError
    installation = _Installation(engine, ct)
    mine: dict[str, str] = {}
    for key in keys:
        text = ct.area_text(key)
        problem, mine[key] = installation.problem(ct, key)
        if problem is not None:
            clean = areas.normalize(text)
            host = f" (host path {ct.paths.host(clean)})" if clean else ""
            raise error(f"CT {ct.ctid}: {key}={text!r}{host} {problem}; "
                        f"{_fix(ct, key, creating)}")
    ours = {key for key in mine if _claimed_by(ct, key) == str(ct.ctid)}
    if len(mine) == len(KEYS) and areas.overlaps(mine["VE_PRIVATE"], mine["VE_ROOT"]):
        raise error(f"CT {ct.ctid}: VE_PRIVATE ({mine['VE_PRIVATE']}) and VE_ROOT "
                    f"({mine['VE_ROOT']}) overlap; {_fix(ct, 'VE_ROOT', creating)}")
    for other_id, theirs in _others(engine, installation, ct, mine):
        for key, path in mine.items():
            for other_key, other_path in theirs.items():
                if areas.is_within(other_path, path) and key in ours:
                    continue
                if areas.overlaps(path, other_path):
                    other = engine.container(other_id)
                    raise error(
                        f"CT {ct.ctid}: {key} ({path}) overlaps {other_key} of CT {other_id} "
                        f"({other_path}, in {other.config.path}); {_fix(ct, key, creating)}")


def _resolved(engine: Engine, installation: _Installation, ctid: int) -> dict[str, str] | None:
    """CT ``ctid``'s usable areas resolved on the host; ``None`` for an unusable config
    (refused by every verb of its own)."""
    try:
        other = engine.container(ctid)
        theirs = {}
        for key in KEYS:
            problem, resolved = installation.path_problem(other, key)
            if problem is None:
                theirs[key] = resolved
    except (VzError, ValueError, OSError):
        return None
    return theirs


class AreaIndex:
    """Every CT's resolved areas, sorted, for the many starts of one ``vzctl boot-all``:
    each start then compares its areas with the few that can overlap them (ancestors and
    descendants, found by bisection) instead of resolving every other CT's paths again
    (a start among 1,000 CTs spent 0.3 s here).  Set on the engine as ``area_index`` by
    whoever knows that no config changes meanwhile; built on first use."""

    def __init__(self) -> None:
        self._built: dict[tuple[str, tuple[str, ...]],
                          tuple[list[tuple[str, int]], list[str], dict[int, dict[str, str]]]] = {}

    def candidates(self, engine: Engine, installation: _Installation,
                   paths: Iterable[str]) -> list[int]:
        """The CTs with an area that ``paths`` could overlap, in ID order."""
        key = (installation.prefix, tuple(installation.own_dirs))
        if key not in self._built:
            table: dict[int, dict[str, str]] = {}
            for ctid in engine.ctids():
                theirs = _resolved(engine, installation, ctid)
                if theirs is not None:
                    table[ctid] = theirs
            entries = sorted((path, ctid) for ctid, theirs in table.items()
                             for path in theirs.values())
            self._built[key] = (entries, [path for path, _ctid in entries], table)
        entries, by_path, _table = self._built[key]
        found: set[int] = set()
        for path in paths:
            top = path.rstrip("/") or "/"
            ancestors = {top}
            while top != "/":
                top = os.path.dirname(top)
                ancestors.add(top)
            for ancestor in ancestors:  # areas containing path (or equal to it)
                i = bisect.bisect_left(by_path, ancestor)
                while i < len(entries) and entries[i][0] == ancestor:
                    found.add(entries[i][1])
                    i += 1
            below = path.rstrip("/") + "/"  # areas inside path
            i = bisect.bisect_left(by_path, below)
            while i < len(entries) and entries[i][0].startswith(below):
                found.add(entries[i][1])
                i += 1
        return sorted(found)

    def areas_of(self, installation: _Installation, ctid: int) -> dict[str, str]:
        return self._built[(installation.prefix, tuple(installation.own_dirs))][2][ctid]


def _others(engine: Engine, installation: _Installation, ct: Container,
            mine: dict[str, str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The other CTs and their resolved areas to compare ``mine`` with: every CT, or with
    an :class:`AreaIndex` on the engine only those that can overlap."""
    index: AreaIndex | None = getattr(engine, "area_index", None)
    if index is None:
        for other_id in engine.ctids():
            if other_id != ct.ctid:
                theirs = _resolved(engine, installation, other_id)
                if theirs is not None:
                    yield other_id, theirs
        return
    for other_id in index.candidates(engine, installation, mine.values()):
        if other_id != ct.ctid:
            yield other_id, index.areas_of(installation, other_id)


def check_removable(ct: Container, *, force: bool) -> None:
    """Refuse to destroy a private area that is not provably ``ct``'s: it must carry
    vzcore's mark naming ``ct``.  An unmarked area (made by a release before marks, or a
    file system without ``trusted.*`` attributes) is removed when it is empty, when it is
    exactly where vz.conf's pattern (or OpenVZ's default) puts this CT's area, or with
    ``force``.
    Call after :func:`check_areas`."""
    private = ct.private
    if not os.path.lexists(private):
        return
    marker = areas.read_marker(private)
    if marker == str(ct.ctid):
        return
    if marker is not None:
        raise DestroyError(f"CT {ct.ctid}: private area {private} is marked as CT {marker}'s "
                           f"({areas.MARKER}); set VE_PRIVATE in {ct.config.path} to this CT's "
                           "own area")
    if force or _pattern_owner(ct, "VE_PRIVATE") == ct.ctid or areas.is_empty_dir(private):
        return
    raise DestroyError(f"CT {ct.ctid}: private area {private} has no vzcore mark "
                       f"({areas.MARKER}) and is not at vz.conf's VE_PRIVATE path for this CT, so "
                       f"it is not provably this CT's; check that it holds CT {ct.ctid}'s files "
                       f"only, then run 'vzctl destroy --force {ct.ctid}'")
