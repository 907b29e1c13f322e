"""Fixtures of the OCI tests: the runtime under test, one busybox image per session, podman
and containerd with private configuration (tests/oci/harness.py; docs/oci.md)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # harness and validation, shared with contrib/

from harness import (
    IMAGE,
    RUNTIME_ENV,
    Containerd,
    MountNamespace,
    Podman,
    build_rootfs,
    oci_archive,
    rootfs_tar,
    runtime_binary,
    runtime_name,
)
from validation import engine_runtime


def _require(tool: str) -> None:
    # CI installs these with contrib/setup.sh --test: a missing one fails, never skips.
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is not installed: run contrib/setup.sh --test (contrib/oci/packages)")


@pytest.fixture(scope="session")
def oci_runtime() -> Path:
    """The runtime under test ($VZ_OCI_RUNTIME, default the venv's vzcore-oci)."""
    runtime = runtime_binary()
    if not runtime.is_file():
        pytest.fail(f"the OCI runtime {runtime} is missing: install vzcore-oci "
                    f"(contrib/setup.sh --test) or set {RUNTIME_ENV} to a runtime's path")
    return runtime


@pytest.fixture(scope="session")
def is_vzcore(oci_runtime: Path) -> bool:
    """Whether the runtime under test is vzcore-oci (beancounters, org.openvz.* annotations)."""
    return runtime_name(oci_runtime) == "vzcore-oci"


@pytest.fixture(scope="session")
def oci_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("oci")


@pytest.fixture(scope="session")
def busybox_image(oci_workdir: Path) -> dict[str, Path]:
    """The busybox image, built once a session: ``rootfs`` (a tree), ``tar`` (the rootfs
    tarball ``podman import`` takes) and ``oci`` (an OCI layout archive for ``ctr``)."""
    rootfs = build_rootfs(oci_workdir / "rootfs")
    tar = rootfs_tar(rootfs, oci_workdir / "busybox-rootfs.tar")
    return {"rootfs": rootfs, "tar": tar, "oci": oci_archive(tar, oci_workdir / "busybox.oci.tar")}


@pytest.fixture(scope="session")
def mountns() -> Iterator[MountNamespace]:
    """The private mount namespace the engines and runtimes run in."""
    ns = MountNamespace()
    yield ns
    ns.close()


@pytest.fixture(scope="session")
def podman(oci_workdir: Path, mountns: MountNamespace, oci_runtime: Path,
           busybox_image: dict[str, Path]) -> Iterator[Podman]:
    """podman with the runtime registered and the busybox image imported as IMAGE."""
    _require("podman")
    _require("conmon")
    pm = Podman(oci_workdir / "podman", mountns, [oci_runtime])
    pm.import_image(busybox_image["tar"], IMAGE)
    yield pm
    pm.cleanup()


@pytest.fixture(scope="session")
def containerd(oci_workdir: Path, mountns: MountNamespace,
               busybox_image: dict[str, Path]) -> Iterator[Containerd]:
    """containerd on a private socket with the busybox image imported as IMAGE."""
    _require("containerd")
    _require("ctr")
    daemon = Containerd(oci_workdir / "containerd", mountns)
    try:
        daemon.ctr("image", "import", str(busybox_image["oci"]))
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def engine_binary(oci_runtime: Path, oci_workdir: Path) -> Path:
    """What engines are given as the runtime binary (crun: a no-cgroup wrapper)."""
    return engine_runtime(oci_runtime, oci_workdir)
