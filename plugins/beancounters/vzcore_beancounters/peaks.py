"""Observed peaks: ``maxheld`` for resources whose kernel counter keeps no peak.

OpenVZ's maxheld is the highest usage since the CT started.  The memory and (since 6.13)
pids controllers keep that peak themselves; for sockets, files, locks and the rest no
kernel counter does, so every reader (``vzctl ubc``, ``vzlist``, a read of the in-CT
view) records the highest value it saw in a small file per CT, removed when the CT stops.
Such a peak is a lower bound of the true one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path


def path_for(run_dir: Path, ctid: int) -> Path:
    """Where the peaks of CT ``ctid`` are kept (below the runtime state directory)."""
    return run_dir / "beancounters" / f"{ctid}.peaks"


def load(path: Path) -> dict[str, int]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {k: int(v) for k, v in data.items() if isinstance(v, int)} if isinstance(data, dict) else {}


def merge(path: Path, held: Mapping[str, int]) -> dict[str, int]:
    """The recorded peaks raised to ``held``; the file is rewritten (atomically) when one
    rose.  Two readers racing may lose one's raise; the next reading restores it."""
    peaks = load(path)
    raised = {name: value for name, value in held.items() if value > peaks.get(name, 0)}
    if raised:
        peaks.update(raised)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(peaks, sort_keys=True))
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only reader still reports what it saw
    return peaks


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
