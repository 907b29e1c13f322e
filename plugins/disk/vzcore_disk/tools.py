"""Running e2fsprogs and util-linux commands with errors that say what failed."""

from __future__ import annotations

import shutil
import subprocess

from vzcore.errors import VzError


def run(ctid: int, what: str, argv: list[str], *,
        ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; a missing program or an exit code not in ``ok`` raises naming the CT,
    what was being done and the command's own message."""
    if shutil.which(argv[0]) is None:
        raise VzError(f"CT {ctid}: cannot {what}: {argv[0]} is not installed (Debian: "
                      f"{PACKAGES.get(argv[0], 'e2fsprogs')}; contrib/setup.sh installs it)")
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode not in ok:
        message = (done.stderr.strip() or done.stdout.strip()).splitlines()
        raise VzError(f"CT {ctid}: cannot {what}: {argv[0]} exited with {done.returncode}"
                      + (f": {message[-1]}" if message else ""))
    return done


PACKAGES = {"mount": "mount", "umount": "mount", "losetup": "mount", "btrfs": "btrfs-progs"}
