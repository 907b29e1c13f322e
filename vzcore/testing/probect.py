"""A running CT with a probe program inside, for tests that attack it from within: the
security suite (tests/security) and the devices plugin's tests share these.

A probe is a small C program built statically (it runs in a busybox CT), copied into the
CT's ``/usr/local/bin`` before the start; it prints ``ok`` or an errno name.  The CT runs
in one of :data:`PROFILES` (``userns``: the default, in a user namespace;
``privileged``: ``LOCAL_UID=0``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import pytest

from vzcore.testing.contracts import profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

PROFILES = ("userns", "privileged")


def build_static(source: Path, out_dir: Path) -> Path:
    """``source`` (C) built statically into ``out_dir``; fails the test without gcc."""
    if not shutil.which("gcc"):
        pytest.fail(f"building {source.name} needs gcc and libc6-dev (contrib/setup.sh "
                    "installs them)")
    out = out_dir / source.stem
    subprocess.run(["gcc", "-static", "-O2", "-o", str(out), str(source)], check=True)
    return out


@attrs.define
class ProbeCt:
    """A started CT of one profile, with its probe in /usr/local/bin."""

    ctid: int
    profile: str
    vzctl: Vzctl
    env: VzEnv
    probe_name: str = "probe"

    def sh(self, command: str) -> subprocess.CompletedProcess[str]:
        """``command`` run by the CT's shell (``vzctl exec2``: its exit status is kept)."""
        return self.vzctl("exec2", self.ctid, command, check=False)

    def probe(self, *args: object) -> str:
        """Run the probe inside; its verdict: ``ok`` or an errno name (``EPERM``)."""
        result = self.vzctl("exec3", self.ctid, f"/usr/local/bin/{self.probe_name}", *args,
                            check=False)
        assert result.returncode in (0, 1), result.stderr
        return result.stdout.strip()

    @property
    def init_pid(self) -> int:
        """The CT's init, as the host sees it."""
        return int(json.loads(self.env.state(self.ctid).read_text())["init"]["pid"])

    def host_path(self, path: str) -> Path:
        """``path`` inside the running CT, as the host reaches it."""
        return Path(f"/proc/{self.init_pid}/root") / path.lstrip("/")


def start_probe_ct(vz_env: VzEnv, vzctl: Vzctl, probe: Path, profile: str, *,
                   ctid: int = 101, hostname: str = "probe101") -> ProbeCt:
    """Create CT ``ctid`` (busybox) in ``profile``, put ``probe`` into it, start it."""
    vzctl("create", ctid, "--ostemplate", "busybox", "--hostname", hostname,
          *profile_options(vz_env, profile))
    install_probe(vz_env, ctid, probe)
    vzctl("start", ctid)
    return ProbeCt(ctid, profile, vzctl, vz_env, probe.name)


def install_probe(vz_env: VzEnv, ctid: int, probe: Path) -> None:
    """Copy ``probe`` into the stopped CT's /usr/local/bin, owned by the CT's root."""
    target = vz_env.private(ctid) / "usr/local/bin" / probe.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(probe, target)
    owner = vz_env.private(ctid).stat()
    os.chown(target.parent, owner.st_uid, owner.st_gid)
    os.chown(target, owner.st_uid, owner.st_gid)


@contextmanager
def attach_loop(image: Path, content: bytes) -> Iterator[str]:
    """A host loop device backed by ``image`` (1 MiB starting with ``content``); detached
    after."""
    # a modular kernel (the VM's) has no loop device until the module is loaded
    subprocess.run(["modprobe", "loop"], capture_output=True, check=False)
    image.write_bytes(content.ljust(1 << 20, b"\0"))
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=True)
