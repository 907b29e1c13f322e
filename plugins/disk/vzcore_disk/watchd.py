"""The grace watcher daemon (:mod:`vzcore_disk.watch`): ``python -m vzcore_disk.watchd DIR``.

Each round it looks at every CT listed in ``DIR/ctids`` (``VZ_ROOT`` names the
installation) as ``vzctl quota`` would, holding the CT's limits lock
(:func:`vzcore_disk.watch.guard`, which the mount, umount, set and quota of the CT hold
too, so a look never runs beside a resize or an unmount): the layout's ``enforce``
starts the grace when use went above a soft limit, and lowers the kernel's limit to the
soft one once the grace is over (or lifts it when use is back below).  It sleeps
``QUOTA_CHECK_INTERVAL`` seconds, less when a grace ends sooner, so an expired grace is
acted on within a second of its end.  A CT no longer mounted, or without soft limits,
leaves the list; the daemon exits when the list is empty (an unmount normally stops it
first).
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from pathlib import Path

from vzcore.engine import Engine
from vzcore.paths import Paths
from vzcore_disk import grace, layouts, limits, watch


def look(engine: Engine, ctid: int) -> float | None:
    """Enforce CT ``ctid``'s soft limits now; returns the seconds until its grace ends
    (``None``: no grace running), raises :class:`LookupError` when the CT needs no
    watching any more."""
    ct = engine.container(ctid)
    if not ct.exists or not watch.needs_watch(ct):
        raise LookupError(ctid)
    layout = layouts.limiter(ct)
    if layout is None or not layout.mounted(ct):
        raise LookupError(ctid)
    with watch.guard(ct):
        if not layout.mounted(ct):  # unmounted meanwhile
            raise LookupError(ctid)
        wanted = limits.of(ct)
        state = layout.enforce(ct, wanted)
    if state.space_since is not None and not state.enforced:
        return float(grace.remaining(state.space_since, wanted.quotatime) or 0) + 0.5
    return None


def one_round(engine: Engine, listed: Path, default_sleep: float) -> float | None:
    """Look at every listed CT; the seconds to sleep, ``None`` when nothing is listed."""
    sleep = default_sleep
    any_left = False
    for entry in sorted(listed.iterdir()) if listed.is_dir() else []:
        if not entry.name.isdigit():
            continue
        try:
            left = look(engine, int(entry.name))
        except LookupError:
            entry.unlink(missing_ok=True)
            continue
        except Exception:  # one CT's trouble must not stop the watch of the others
            traceback.print_exc()
            left = None
        any_left = True
        if left is not None:
            sleep = min(sleep, left)
    return sleep if any_left else None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m vzcore_disk.watchd DIR", file=sys.stderr)
        return 2
    directory = Path(argv[1])
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    while True:
        engine = Engine(Paths.from_environment())  # vz.conf re-read each round
        default_sleep = float(watch.interval(engine.global_config))
        sleep = one_round(engine, directory / "ctids", default_sleep)
        if sleep is None:
            helper = watch.Daemon.named(directory, watch.NAME)
            with helper.locked():  # a mount adding a CT meanwhile finds this daemon gone
                listed = directory / "ctids"
                if not listed.is_dir() or not any(listed.iterdir()):
                    helper.forget()
                    return 0
            continue
        time.sleep(max(0.2, sleep))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
