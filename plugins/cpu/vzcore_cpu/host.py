"""The host's own cpuunits (OpenVZ's VE0CPUUNITS, set with ``vzctl set 0 --cpuunits N``).

The value in force is the one last set live (kept in ``/run/vz/cpu/VE0CPUUNITS`` until
the host reboots, as OpenVZ keeps a live ``vzctl set 0`` until then), else ``VE0CPUUNITS``
from vz.conf, else 1000.  It is applied to the parent group of the running CTs whenever
a CT starts or stops, its cpuunits change, or the host's value changes (see
:func:`vzcore_cpu.mapping.parent_weight`).
"""

from __future__ import annotations

from pathlib import Path

from vzcore.conffile import ConfigFile, atomic_write
from vzcore.linux.cgroups import CgroupSet
from vzcore.paths import Paths
from vzcore_cpu.grammar import host_units

KEY = "VE0CPUUNITS"


def runtime_file(paths: Paths) -> Path:
    return paths.run_dir / "cpu" / KEY


def units(paths: Paths, global_config: ConfigFile) -> int:
    """The host's cpuunits in force; ValueError when the stored text is malformed."""
    try:
        text: str | None = runtime_file(paths).read_text()
    except FileNotFoundError:
        text = global_config.get(KEY)
    return host_units(text)


def remember(paths: Paths, value: int) -> None:
    """Keep a live value for later starts and stops (until the host reboots)."""
    atomic_write(runtime_file(paths), f"{value}\n", durable=False)


def running_parents(paths: Paths) -> list[CgroupSet]:
    """The parent groups of every running CT of this installation, each once."""
    from vzcore.container import ctid_of_file
    from vzcore.runtime import State

    parents: dict[str, CgroupSet] = {}
    try:
        names = sorted(p.name for p in paths.run_dir.iterdir())
    except FileNotFoundError:
        return []
    for name in names:
        ctid = ctid_of_file(name, ".json")
        if ctid is None:
            continue
        try:
            state = State.load(paths.run_dir / name, ctid)
        except Exception:  # a state file being rewritten or damaged: its CT is skipped
            continue
        if state is None or state.cgroups is None or not state.is_running:
            continue
        parent = state.cgroups.parent()
        group = parent.dir_for("cpu")
        if group is not None:
            parents.setdefault(str(group.directory), parent)
    return list(parents.values())
