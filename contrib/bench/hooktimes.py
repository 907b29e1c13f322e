"""Run ``vzctl`` and report how long each plugin's hooks took in vzctl's own process.

    .venv/bin/python contrib/bench/hooktimes.py start 101

prints, after vzctl's own output, one line per hook call to stderr as
``hooktime <plugin> <hook> <milliseconds>`` and ``hooktime total - <milliseconds>`` for
the whole run from interpreter start.  Benchmarks use it to tell a plugin's share of a
verb's time from the core's; it changes nothing else.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from typing import Any

STARTED = time.perf_counter()


def _install() -> list[tuple[str, str, float]]:
    from vzcore.plugin import manager

    calls: list[tuple[str, str, float]] = []
    original = manager.Plugins.call_each

    def timed(self: manager.Plugins, hook_name: str, **kwargs: Any) -> Iterator[tuple[str, Any]]:
        generator = original(self, hook_name, **kwargs)
        while True:
            began = time.perf_counter()
            try:
                name, result = next(generator)
            except StopIteration:
                return
            calls.append((name, hook_name, time.perf_counter() - began))
            yield name, result

    manager.Plugins.call_each = timed  # type: ignore[method-assign]
    return calls


def main() -> None:
    calls = _install()
    import os

    from vzcore.cli.main import exit_now, run_cli, vzctl

    pid = os.getpid()
    code = 1
    try:
        code = run_cli(vzctl, "vzctl", sys.argv[1:])
    finally:
        if os.getpid() == pid:  # not in a forked child that returned here
            for plugin, hook, seconds in calls:
                print(f"hooktime {plugin} {hook} {seconds * 1000:.2f}", file=sys.stderr)
            print(f"hooktime total - {(time.perf_counter() - STARTED) * 1000:.2f}", file=sys.stderr)
    exit_now(code)  # as vzctl itself ends


if __name__ == "__main__":
    main()
