"""Loop devices: which ones back a file, their capacity, detaching them.

Attaching is left to ``mount -o loop`` (util-linux), which sets ``LO_FLAGS_AUTOCLEAR``: the
kernel frees the device when the file system on it is unmounted, so a mounted image needs
no record of its device.  What a killed ``mount`` may leave (a device set up, nothing
mounted on it) is found by its backing file and detached.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from vzcore.errors import VzError


def _losetup(*args: str) -> str:
    try:
        done = subprocess.run(["losetup", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise VzError("losetup is not installed (Debian: mount)") from exc
    if done.returncode != 0:
        raise VzError(f"losetup {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def devices_of(path: str | os.PathLike[str]) -> list[str]:
    """The loop devices backed by the file at ``path`` (``/dev/loop3``), any number."""
    wanted = os.stat(path)
    found = []
    for entry in Path("/sys/block").glob("loop*"):
        backing = entry / "loop" / "backing_file"
        try:
            name = backing.read_text().strip()
            st = os.stat(name.removesuffix(" (deleted)"))
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (wanted.st_dev, wanted.st_ino):
            found.append(f"/dev/{entry.name}")
    return sorted(found)


def refresh_capacity(device: str) -> None:
    """Make ``device`` see its backing file's new size (``LOOP_SET_CAPACITY``)."""
    _losetup("--set-capacity", device)


def detach(device: str) -> None:
    """Detach ``device`` (an unmounted one is freed at once; a mounted one on unmount)."""
    _losetup("--detach", device)


def ensure_module() -> None:
    """Load the loop driver where it is a module not yet loaded (no ``/dev/loop-control``),
    as vzctl loads the modules it needs; a kernel without it is named in the error."""
    if Path("/dev/loop-control").exists():
        return
    subprocess.run(["modprobe", "loop"], capture_output=True, check=False)
    if not Path("/dev/loop-control").exists():
        raise VzError("this kernel has no loop devices (/dev/loop-control is missing and "
                      "'modprobe loop' did not add it); the image layout needs them")
