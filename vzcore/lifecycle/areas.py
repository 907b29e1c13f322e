"""The area checks of :mod:`vzcore.areas` applied to one CT, its vz.conf and the other CTs.

Every verb that mounts, unmounts, populates or removes a CT's ``VE_PRIVATE`` or
``VE_ROOT`` calls :func:`check_areas` before its first effect; ``destroy`` also calls
:func:`check_removable`.
"""

from __future__ import annotations

import os

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
    for other_id in engine.ctids():
        if other_id == ct.ctid:
            continue
        try:
            other = engine.container(other_id)
            theirs = {}
            for other_key in KEYS:
                problem, resolved = installation.path_problem(other, other_key)
                if problem is None:
                    theirs[other_key] = resolved
        except (VzError, ValueError, OSError):
            continue  # a CT whose config is unusable is refused by every verb of its own
        for key, path in mine.items():
            for other_key, other_path in theirs.items():
                if areas.is_within(other_path, path) and key in ours:
                    continue
                if areas.overlaps(path, other_path):
                    raise error(
                        f"CT {ct.ctid}: {key} ({path}) overlaps {other_key} of CT {other_id} "
                        f"({other_path}, in {other.config.path}); {_fix(ct, key, creating)}")


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
