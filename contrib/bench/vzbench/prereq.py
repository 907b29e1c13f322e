"""The suite's own set-up, before it enters its network namespace: Debian packages, matplotlib
in the venv, and the ``web`` template (debootstrap needs the Debian mirror)."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from vzbench.common import BIN, REPO, log, run

PACKAGES = {
    "wrk": "wrk",                       # the load generator
    "crun": "crun", "runc": "runc",      # peers in the latency part
    "lxc-execute": "lxc", "systemd-nspawn": "systemd-container",
    "busybox": "busybox-static", "zstd": "zstd",
}
"""Program -> Debian package the suite runs."""

CACHE = REPO / ".cache/bench"
"""A VZ_ROOT that only holds the suite's template cache between runs."""


def missing_packages() -> list[str]:
    return sorted({pkg for prog, pkg in PACKAGES.items()
                   if shutil.which(prog, path="/usr/sbin:/usr/bin:/sbin:/bin") is None})


def install_packages() -> None:
    """apt-get install what is missing (services stay off: the host's policy-rc.d or none,
    and there is no init system here to start lxc-net)."""
    missing = missing_packages()
    if not missing:
        return
    log(f"apt-get install {' '.join(missing)}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
                      env=env, capture_output=True).returncode != 0:
        run(["apt-get", "update", "-qq"], env=env, check=False)
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing], env=env)


def install_matplotlib() -> None:
    """matplotlib into the venv (the plots are PNGs made with it)."""
    if importlib.util.find_spec("matplotlib") is None:
        log("pip install matplotlib (into the venv)")
        run([str(BIN / "pip"), "install", "-q", "--disable-pip-version-check", "matplotlib"])


def template_name(init: str) -> str:
    return "debian-12-x86_64-web" + ("-sysvinit" if init == "sysvinit" else "")


def build_template(init: str) -> Path:
    """``vzctl template create debian-12 --flavour web --reuse`` in the suite's cache;
    the path of the tarball."""
    (CACHE / "etc/vz").mkdir(parents=True, exist_ok=True)
    (CACHE / "etc/vz/vz.conf").touch()
    log(f"template {template_name(init)} (built once, then reused)")
    run([str(BIN / "vzctl"), "--quiet", "template", "create", "debian-12", "--flavour", "web",
         "--init", init, "--reuse"], env={**os.environ, "VZ_ROOT": str(CACHE)})
    tarball = CACHE / "vz/template/cache" / f"{template_name(init)}.tar.zst"
    if not tarball.is_file():
        raise RuntimeError(f"template create made no {tarball}")
    return tarball


def link_template(tarball: Path, root: Path) -> None:
    """Make the template (tarball and metadata) available in the installation at ``root``."""
    target = root / "vz/template/cache"
    target.mkdir(parents=True, exist_ok=True)
    for source in (tarball, tarball.with_name(tarball.name.removesuffix(".tar.zst") + ".json")):
        try:
            os.link(source, target / source.name)
        except OSError:
            shutil.copy2(source, target / source.name)


RELEASE_ENV = "VZBENCH_RELEASE_VENV"
"""Set in the suite's environment once it runs from the non-editable install."""


def source_digest() -> str:
    """A digest of the checkout's installable sources (vzcore, the plugins, their
    pyproject.toml files), committed or not: names the install made from them."""
    listed = run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard", "--",
                  "pyproject.toml", "vzcore", "plugins"]).stdout.split()
    digest = hashlib.sha256()
    for name in sorted(listed):
        path = REPO / name
        if path.is_file() and "/tests/" not in f"/{name}":
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def release_venv() -> Path:
    """A non-editable install of this checkout (``contrib/setup.sh`` without ``--test``:
    ``pip install . plugins/*/`` into a venv of Debian's python3), made once per state of
    the sources in ``.cache/bench/venv-DIGEST``; the path of its interpreter.  The suite
    runs from it, so what it times is the ``vzctl`` a user installs: an editable install
    adds an import finder per plugin to every interpreter start (about 10 ms of CPU for
    ``python -c pass`` here) and to every import vzctl makes."""
    venv = CACHE / f"venv-{source_digest()}"
    python = venv / "bin/python"
    if not (venv / ".complete").exists():
        for old in CACHE.glob("venv-*"):
            shutil.rmtree(old, ignore_errors=True)
        log(f"installing this checkout non-editable into {venv} (once per source state)")
        run(["/usr/bin/python3", "-m", "venv", "--clear", str(venv)])
        pip = [str(venv / "bin/pip"), "install", "-q", "--disable-pip-version-check"]
        plugins = sorted(str(p) for p in (REPO / "plugins").iterdir() if (p / "pyproject.toml").exists())
        # setuptools builds in the tree's build/ directories (ignored by git): emptied
        # before, as a stale build/lib would be installed too, and removed after
        builds = [REPO / "build", *(Path(p) / "build" for p in plugins)]
        _remove(builds)
        try:
            run([*pip, str(REPO), *plugins])
        finally:
            _remove(builds)
        (venv / ".complete").touch()
    return python


def _remove(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)


def running_from(python: Path) -> bool:
    return Path(sys.prefix).resolve() == python.parent.parent.resolve()


PID_MAX = Path("/proc/sys/kernel/pid_max")
PROCESSES_PER_WEB_CT = 16
"""A booted web CT's processes (init, syslogd, cron, sshd, inetd, exim4, apache2 and its
eight workers: 15) plus one for a ``vzctl exec``."""


@contextlib.contextmanager
def enough_pids(cts: int) -> Iterator[None]:
    """``kernel.pid_max`` raised for the run where ``cts`` web CTs (and as many LXC
    containers, the seed part's comparison) would not fit in it, and set back after.  The
    default 32768 (Debian's, with fewer than 32 CPUs) holds about 1,000 web CTs: one run of
    1,000 CTs beside LXC's ran out of PIDs ("Resource temporarily unavailable")."""
    before = int(PID_MAX.read_text())
    needed = 2 * cts * PROCESSES_PER_WEB_CT + 8192  # the host's own processes beside them
    if needed <= before:
        yield
        return
    log(f"kernel.pid_max {before} -> {needed} for this run ({cts} CTs)")
    PID_MAX.write_text(str(min(needed, 4194304)))
    try:
        yield
    finally:
        PID_MAX.write_text(str(before))
        log(f"kernel.pid_max set back to {before}")
