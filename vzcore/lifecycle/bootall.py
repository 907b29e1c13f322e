"""``vzctl boot-all`` and ``vzctl stop-all``: what the host's ``vz`` service runs.

``boot-all`` starts every CT with ``ONBOOT=yes``, higher ``BOOTORDER`` first and CTs
without one last (OpenVZ's order).  CTs of one ``BOOTORDER`` start together, up to
``VE_PARALLEL`` (vz.conf) at a time; the next, lower order begins once the whole group
has finished, so a CT may rely on a higher-ordered one being up.  ``stop-all`` stops
every running CT, ``VE_PARALLEL`` at a time as OpenVZ's service did, each within its own
``STOP_TIMEOUT`` (a thousand stops at once only queue on the host's shared locks:
measured in docs/benchmarks.md).

The many starts share this one process: plugins are discovered, every module a start and
the CT's init need is imported, and the cgroup hierarchies are read once; then each CT's
start or stop runs in a child forked from it (:func:`_fork_verb`), which takes the CT's
lock as a single ``vzctl start`` does and reports its error text through a pipe.  A
failing CT never stops the others; the summary names each failure.

Plugins import much of what a start needs inside their hooks (so that ``vzlist`` does
not pay for it).  A child's imports die with it, so the first CT starts alone and names
the modules its start imported; this process imports them before forking the others,
which then share them (about 40 modules: a third of a start's own time).

Each start of a boot-all and each stop of a stop-all runs with ``run.options["batch"]``
(:data:`BATCH_OPTION`): host-wide work computed from every running CT (the CTs' parent
CPU weight) is left to ``vz_batch_done``, called once here after the last.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import AlreadyRunning, InvalidValue, NotRunning, VzError

STOP_MODES = ("stop", "suspend")
MESSAGE_LIMIT = 4000
"""Bytes of a child's error text passed back (far below a pipe's buffer: the child never
blocks on it)."""
MODULE_LIMIT = 500
"""Module names a child reports at most (their text, too, stays below a pipe's buffer)."""
BATCH_OPTION = "batch"
"""``run.options`` key, true in each start of a boot-all and each stop of a stop-all:
host-wide work may wait for ``vz_batch_done`` at the end of the run."""


@dataclass
class Outcome:
    """One CT's result: ``code`` 0 (done), -1 (skipped, ``message`` says why) or the
    vzctl exit code of its failure."""

    ctid: int
    code: int
    message: str = ""
    seconds: float = 0.0


@dataclass
class Summary:
    """Every CT's outcome of one ``boot-all`` or ``stop-all``."""

    verb: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.code > 0]

    @property
    def done(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.code == 0]


def ve_parallel(engine: Engine) -> int:
    """``VE_PARALLEL`` from vz.conf; unset: four per CPU (a start mostly waits on the
    kernel and on its forks, so a core keeps several busy)."""
    text = engine.global_config.get("VE_PARALLEL")
    if not text:
        return max(1, (os.cpu_count() or 1) * 4)
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise InvalidValue(f"VE_PARALLEL={text!r} in {engine.paths.vz_conf} is not a positive "
                           "number; set it to how many CTs may start at once (e.g. 8)")
    return value


def boot_order(ct: Container) -> int | None:
    """``BOOTORDER`` of ``ct``; ``None`` when unset (it starts after every ordered CT)."""
    text = ct.get("BOOTORDER")
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidValue(f"CT {ct.ctid}: BOOTORDER={text!r} is not a number; fix it with "
                           f"'vzctl set {ct.ctid} --bootorder N --save'") from None


def boot_groups(cts: Iterable[Container]) -> list[list[Container]]:
    """The CTs to start, grouped by ``BOOTORDER``: highest first, unordered last; in
    CTID order within a group."""
    ordered: dict[int | None, list[Container]] = {}
    for ct in cts:
        ordered.setdefault(boot_order(ct), []).append(ct)
    keys = sorted((k for k in ordered if k is not None), reverse=True)
    if None in ordered:
        keys.append(None)  # type: ignore[arg-type]
    return [sorted(ordered[k], key=lambda c: c.ctid) for k in keys]


def prepare(engine: Engine) -> None:
    """Everything the forked starts share: load the plugins, build the registry, import
    the modules init needs, read the cgroup hierarchies (cached per process)."""
    from vzcore.ctgroups import _hierarchies

    plugins = engine.plugins
    plugins.require("isolation", "start")
    _ = engine.registry
    plugins.import_child_modules()
    _hierarchies()


def share_configs(engine: Engine) -> None:
    """Read every CT's config once, here, for all the starts: each start compares its
    areas with every other CT's (:func:`vzcore.lifecycle.areas.check_areas`), which would
    read all N configs in each of N starts.  Configs do not change during a boot-all (a
    ``vzctl set`` meanwhile waits for no lock of ours either way: a start reads the others'
    configs unlocked too), so this process's copies are as current as a fresh read."""
    loaded: dict[int, Container] = {}
    errors: dict[int, VzError] = {}
    load = engine.container
    for ctid in engine.ctids():
        try:
            loaded[ctid] = load(ctid)
        except VzError as exc:
            errors[ctid] = exc

    def container(ctid: int) -> Container:
        if ctid in errors:
            raise errors[ctid]
        return loaded[ctid] if ctid in loaded else load(ctid)

    engine.container = container  # type: ignore[method-assign]
    from vzcore.lifecycle.areas import AreaIndex

    # The same reasoning for the areas the checks resolve from those configs.
    setattr(engine, "area_index", AreaIndex())  # noqa: B010 - an optional engine attribute


def boot_all(engine: Engine, *, parallel: int | None = None) -> Summary:
    """Start every ``ONBOOT=yes`` CT (see the module); never raises for one CT's failure."""
    from vzcore.lifecycle.start import start

    limit = parallel or ve_parallel(engine)
    summary = Summary("start")
    share_configs(engine)
    cts: list[Container] = []
    for ctid in engine.ctids():
        try:
            ct = engine.container(ctid)
            if (ct.get("ONBOOT") or "").lower() != "yes":
                continue
            boot_order(ct)
        except VzError as exc:
            _report(engine, summary, Outcome(ctid, exc.exit_code, str(exc)))
            continue
        if (ct.get("DISABLED") or "").lower() == "yes":
            _report(engine, summary, Outcome(ctid, -1, "disabled (DISABLED=yes); not started"))
            continue
        cts.append(ct)
    if not cts:
        engine.say("boot-all: no CT to start (none has ONBOOT=yes)")
        return summary
    prepare(engine)
    _build_area_index(engine, cts[0])
    engine.say(f"boot-all: starting {len(cts)} CTs, up to {limit} at a time")

    def one(ct: Container) -> None:
        start(engine, ct, **{BATCH_OPTION: True})

    groups = boot_groups(cts)
    first = groups[0].pop(0)  # alone: the modules its start imports are learnt from it
    learnt: list[str] = []
    _run_parallel(engine, [first], one, 1, summary, ok_errors=(AlreadyRunning,), learn=learnt)
    _import_quietly(learnt)
    for group in groups:
        _run_parallel(engine, group, one, limit, summary, ok_errors=(AlreadyRunning,))
    started = {o.ctid for o in summary.done}
    engine.plugins.run_each("vz_batch_done", cts=[ct for ct in cts if ct.ctid in started],
                            verb="start", on_error=lambda error: engine.warn(f"warning: {error}"))
    return summary


def _build_area_index(engine: Engine, ct: Container) -> None:
    """Resolve every CT's areas here, once, for the children (one CT's check builds the
    index; its verdict is left to that CT's own start, which reports it)."""
    from vzcore.lifecycle.areas import check_areas

    try:
        check_areas(engine, ct)
    except VzError:
        pass


def _import_quietly(names: list[str]) -> None:
    """Import ``names`` (in the order a child imported them); one that fails here is
    left to the children, which import it themselves and report any error."""
    for name in names:
        if name not in sys.modules:
            try:
                importlib.import_module(name)
            except Exception:  # the child's own import reports the error
                continue


def stop_all(engine: Engine, *, parallel: int | None = None, fast: bool = False) -> Summary:
    """Stop every running CT, ``VE_PARALLEL`` (or ``parallel``) at a time, each within
    its ``STOP_TIMEOUT``; ``VE_STOP_MODE=suspend`` is refused: no checkpoint provider."""
    from vzcore.lifecycle.stop import stop

    mode = (engine.global_config.get("VE_STOP_MODE") or "stop").lower()
    if mode not in STOP_MODES:
        raise InvalidValue(f"VE_STOP_MODE={mode!r} in {engine.paths.vz_conf} is not stop or "
                           "suspend; set VE_STOP_MODE=stop")
    if mode == "suspend":
        raise InvalidValue(f"VE_STOP_MODE=suspend in {engine.paths.vz_conf}: vzcore has no "
                           "checkpoint provider to suspend CTs; set VE_STOP_MODE=stop (nothing "
                           "was stopped)")
    summary = Summary("stop")
    cts = []
    for ctid in engine.running_ctids():
        try:
            cts.append(engine.container(ctid))
        except VzError as exc:
            _report(engine, summary, Outcome(ctid, exc.exit_code, str(exc)))
    if not cts:
        engine.say("stop-all: no CT runs")
        return summary
    _ = engine.plugins  # loaded once, before the forks
    engine.say(f"stop-all: stopping {len(cts)} CTs, up to {parallel or ve_parallel(engine)} "
               "at a time")

    def one(ct: Container) -> None:
        stop(engine, ct, fast=fast, **{BATCH_OPTION: True})

    limit = parallel or ve_parallel(engine)
    _run_parallel(engine, cts, one, limit, summary, ok_errors=(NotRunning,))
    # Every CT's stop ended, stopped or not: one that failed may have got past the
    # hooks that left their host-wide work to this call.
    engine.plugins.run_each("vz_batch_done", cts=cts, verb="stop",
                            on_error=lambda error: engine.warn(f"warning: {error}"))
    return summary


def _run_parallel(engine: Engine, cts: list[Container], verb: Callable[[Container], None],
                  limit: int, summary: Summary, ok_errors: tuple[type[VzError], ...],
                  learn: list[str] | None = None) -> None:
    """Run ``verb`` for each of ``cts`` in forked children, ``limit`` at a time; report
    each result as it comes.  ``learn`` receives the modules the children imported."""
    waiting = list(reversed(cts))
    running: dict[int, tuple[Container, int, float]] = {}  # pid -> (ct, pipe, started)
    while waiting or running:
        while waiting and len(running) < limit:
            ct = waiting.pop()
            pid, pipe = _fork_verb(engine, ct, verb, ok_errors)
            running[pid] = (ct, pipe, time.monotonic())
        pid, status = os.wait()
        if pid not in running:
            continue  # not one of ours (none is expected)
        ct, pipe, started = running.pop(pid)
        outcome = _collect(ct, pipe, os.waitstatus_to_exitcode(status), learn)
        outcome.seconds = time.monotonic() - started
        _report(engine, summary, outcome)


def _fork_verb(engine: Engine, ct: Container, verb: Callable[[Container], None],
               ok_errors: tuple[type[VzError], ...]) -> tuple[int, int]:
    """Fork a child that runs ``verb(ct)`` and writes its result to a pipe; return the
    child's PID and the pipe's reading end."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return pid, read_end
    # The child: its progress is the parent's to print; warnings still go to stderr.
    os.close(read_end)
    engine.say = lambda _message: None
    code, message = 0, ""
    imported = set(sys.modules)
    try:
        verb(ct)
    except ok_errors as exc:
        code, message = -1, str(exc)
    except VzError as exc:
        code, message = exc.exit_code, str(exc)
    except BaseException as exc:  # a bug must still name the CT in the summary
        import traceback

        from vzcore.errors import describe

        code, message = 3, describe(exc)
        # Not a VzError: where it came from is what finds the bug (to the service's log).
        print(f"CT {ct.ctid}: unexpected error:\n{traceback.format_exc()}", file=sys.stderr,
              end="", flush=True)
    try:
        modules = [name for name in sys.modules if name not in imported][:MODULE_LIMIT]
        data = json.dumps({"code": code, "message": message[:MESSAGE_LIMIT],
                           "modules": modules}).encode()
        os.write(write_end, data)
    finally:
        os._exit(0)


def _collect(ct: Container, pipe: int, status: int, learn: list[str] | None) -> Outcome:
    """The result of the reaped child that wrote to ``pipe``.  Read without waiting for
    the end of file: a process the start left behind (forked, not exec'd) may still hold
    the writing end, and the child wrote everything before it exited."""
    os.set_blocking(pipe, False)
    data = b""
    try:
        while chunk := os.read(pipe, 65536):
            data += chunk
    except BlockingIOError:
        pass
    finally:
        os.close(pipe)
    try:
        result = json.loads(data)
        if learn is not None:
            learn.extend(str(name) for name in result.get("modules", ()))
        return Outcome(ct.ctid, int(result["code"]), str(result["message"]))
    except (ValueError, KeyError, TypeError):
        how = f"was killed by signal {-status}" if status < 0 else f"exited {status}"
        return Outcome(ct.ctid, 3, f"its boot-all process {how} before reporting a result")


def _report(engine: Engine, summary: Summary, outcome: Outcome) -> None:
    summary.outcomes.append(outcome)
    verb = "started" if summary.verb == "start" else "stopped"
    if outcome.code == 0:
        engine.say(f"CT {outcome.ctid} {verb} ({outcome.seconds:.2f} s)")
    elif outcome.code < 0:
        engine.say(f"CT {outcome.ctid} skipped: {outcome.message}")
    else:
        engine.warn(f"CT {outcome.ctid} failed to {summary.verb}: {outcome.message}")


def conclude(summary: Summary, elapsed: float) -> str:
    """The last line of a run; raises :class:`VzError` naming each failed CT."""
    failed = summary.failed
    verb = "started" if summary.verb == "start" else "stopped"
    command = "boot-all" if summary.verb == "start" else "stop-all"
    line = f"{command}: {len(summary.done)} CTs {verb} in {elapsed:.2f} s"
    if failed:
        names = "; ".join(f"CT {o.ctid} (exit {o.code}): {o.message}" for o in failed)
        raise VzError(f"{line}; {len(failed)} failed: {names}",
                      exit_code=33 if summary.verb == "stop" else 3)
    return line

