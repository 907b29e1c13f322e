"""A full run takes hours (thousands of Debian CTs boot at about 0.7 s each on two CPUs), so
``results.json`` is written after every seed size and every part, and ``--resume`` goes on
from it: what it holds without an error is kept, the rest is measured.  Each seed size is
a self-contained comparison (CTs, host servers and LXC in the same run), so sizes measured
in different runs stay comparable; every run is listed in the report with its date,
commit and load."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SAME = ("quick", "init", "layout", "seed_rounds", "seed_seconds", "seed_alone", "install")
"""Settings a resumed run must share with the one it goes on from: they change what a
figure means.  The sizes and the parts may differ (a resumed run may add some)."""


class ResumeError(Exception):
    """``--resume`` cannot go on from what is in ``--out``."""


def previous(out: Path, conf: dict[str, Any]) -> dict[str, Any]:
    """The results a resumed run goes on from; :class:`ResumeError` names what differs."""
    path = out / "results.json"
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResumeError(f"--resume: {path} does not exist; run without --resume first") from None
    except (OSError, ValueError) as exc:
        raise ResumeError(f"--resume: cannot read {path}: {exc}") from None
    differ = [key for key in SAME if saved.get("settings", {}).get(key) != conf.get(key)]
    if differ:
        key = differ[0]
        raise ResumeError(f"--resume: {path} was measured with {key} = "
                          f"{saved['settings'].get(key)!r}, this run asks for {conf.get(key)!r}; "
                          "use the same options, or another --out")
    return saved


def merge(saved: dict[str, Any], conf: dict[str, Any], parts: list[str],
          machine: dict[str, Any]) -> dict[str, Any]:
    """``saved`` made ready to go on: failed measurements dropped (they are measured
    again), this run's sizes and parts added, this run listed in ``runs``."""
    errors = saved.get("errors") or {}
    saved["errors"] = {}
    for part in ("latency", "density", "resources"):  # (a failed seed size left no row)
        if part in errors:
            saved.pop(part, None)
    settings = saved["settings"]
    settings["seed_cts"] = sorted(set(settings.get("seed_cts", [])) | set(conf["seed_cts"]))
    for key in ("latency_rounds", "density_limit", "density_budget_s", "resources_window_s",
                "resources_repeat"):
        settings[key] = conf[key]
    saved["parts"] = list(dict.fromkeys([*saved.get("parts", []), *parts]))
    saved.setdefault("runs", [run_entry(saved["machine"])]).append(run_entry(machine))
    return saved


def run_entry(machine: dict[str, Any]) -> dict[str, Any]:
    """What the report says of one run: date, commit and load."""
    return {"date": machine["date"], "vzcore": machine["vzcore"],
            "load_start": machine["load_start"], "load_end": machine.get("load_end")}


def seed_done(results: dict[str, Any], count: int) -> bool:
    """Whether the seed at ``count`` CTs is measured already."""
    return any(row.get("cts") == count for row in results.get("seed") or [])


def part_done(results: dict[str, Any], part: str) -> bool:
    """Whether ``part`` (not the seed) is measured already."""
    return bool(results.get(part)) and part not in (results.get("errors") or {})


def save(results: dict[str, Any], out: Path) -> None:
    """Write ``results.json`` whole or not at all (a kill while writing keeps the last)."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(results, indent=1, default=str) + "\n")
    os.replace(partial, path)
