"""What the OCI tests and the podman benchmark drive an OCI runtime with (docs/oci.md).

- :func:`runtime_binary`: the runtime under test, ``$VZ_OCI_RUNTIME`` (a path or a name on
  PATH, e.g. ``crun``) or this project's ``.venv/bin/vzcore-oci``.
- :func:`build_rootfs`, :func:`rootfs_tar`, :func:`oci_archive`: a busybox image made from
  Debian's busybox-static, no registry: a rootfs tarball for ``podman import`` and an OCI
  image layout archive for ``ctr image import``.
- :class:`MountNamespace`: one private mount namespace that podman, conmon, containerd and
  the runtimes all run in, with ``/sys/fs/cgroup/unified`` unmounted there (crun 1.8 refuses
  hybrid mode while that cgroup2 mount has a controller, even with cgroups disabled;
  feasibility B). It also keeps podman's and containerd's mounts out of the host's.
- :class:`Podman`: podman with a private containers.conf and storage.conf (cgroups
  disabled, no network, ulimits this machine allows), the runtime passed as ``--runtime``.
- :class:`Containerd`: Debian's containerd with a private root, state and socket, and ``ctr``.
- :func:`bundle`: an OCI bundle (``config.json`` + rootfs) for calling a runtime directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

RUNTIME_ENV = "VZ_OCI_RUNTIME"
PROJECT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/vzcore-busybox:latest"
BUSYBOX = Path("/bin/busybox")


def runtime_binary() -> Path:
    """The OCI runtime the tests drive: ``$VZ_OCI_RUNTIME`` or the venv's ``vzcore-oci``."""
    wanted = os.environ.get(RUNTIME_ENV, "")
    if not wanted:
        return PROJECT / ".venv" / "bin" / "vzcore-oci"
    if "/" in wanted:
        return Path(wanted).resolve()
    found = shutil.which(wanted)
    return Path(found) if found else Path(wanted)


def runtime_name(runtime: Path) -> str:
    """``crun``, ``runc`` or ``vzcore-oci``: what the tests call the runtime in names."""
    return runtime.name


# --- the busybox image ---------------------------------------------------------------

def build_rootfs(dest: Path) -> Path:
    """A busybox rootfs in *dest*: Debian's static busybox and a link per applet."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "etc", "root",
              "var", "run"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    (dest / "tmp").chmod(0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list-full"], check=True, capture_output=True,
                             text=True).stdout.split()
    for applet in applets:
        link = dest / applet
        if not link.exists() and not link.is_symlink():
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to("/bin/busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return dest


def rootfs_tar(rootfs: Path, out: Path) -> Path:
    """*rootfs* as an uncompressed tar owned by root (what ``podman import`` and a layer take)."""
    def root_owned(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        info.mtime = 0  # the same rootfs gives the same layer digest
        return info

    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False,
                    filter=root_owned)
    return out


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (blobs / digest.split(":")[1]).write_bytes(data)
    return digest, len(data)


def oci_archive(layer_tar: Path, out: Path, name: str = IMAGE) -> Path:
    """An OCI image layout archive of one uncompressed layer, named *name* for
    ``ctr image import`` (``io.containerd.image.name``) and for ``podman load``."""
    layout = out.with_suffix(".d")
    shutil.rmtree(layout, ignore_errors=True)
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layer = layer_tar.read_bytes()
    layer_digest, layer_size = _blob(blobs, layer)
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    config_digest, config_size = _blob(blobs, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    }
    manifest_digest, manifest_size = _blob(blobs, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": manifest_digest, "size": manifest_size,
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
    }]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    with tarfile.open(out, "w") as tar:
        for path in sorted(layout.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(layout)), recursive=False)
    shutil.rmtree(layout)
    return out


# --- a private mount namespace ---------------------------------------------------------

class MountNamespace:
    """A private mount namespace held open by a sleeping process; commands enter it with
    nsenter. Killing the holder at :meth:`close` drops every mount made in it."""

    def __init__(self, hide_unified: bool = True) -> None:
        script = ("mount --make-rprivate / && "
                  + ("{ ! mountpoint -q /sys/fs/cgroup/unified || umount /sys/fs/cgroup/unified; } && "
                     if hide_unified else "")
                  + "echo ready && exec sleep infinity")
        self.holder = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                        "sh", "-c", script],
                                       stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                       text=True, start_new_session=True)
        assert self.holder.stdout is not None
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            self.holder.kill()
            raise RuntimeError(f"could not make a private mount namespace: {line!r}")

    def command(self, argv: Sequence[str], cwd: Path | None = None) -> list[str]:
        """*argv* run inside the namespace, in *cwd* (nsenter would start it in ``/``)."""
        return ["nsenter", "-t", str(self.holder.pid), "-m", f"--wd={cwd or Path.cwd()}",
                "--", *argv]

    def close(self) -> None:
        """Kill the holder (the namespace goes when the last process in it exits)."""
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait()


def run(argv: Sequence[str], timeout: float = 120, check: bool = True,
        input: str | None = None, env: dict[str, str] | None = None,
        ) -> subprocess.CompletedProcess[str]:
    """Run *argv*; on failure (with *check*) raise with its output, so a test says why."""
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                          input=input, env=env, stdin=None if input is not None else subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc


# --- podman ---------------------------------------------------------------------------

CONTAINERS_CONF = """\
[containers]
# Never create cgroups: this machine's cgroup tree is not ours (vzcore-oci puts a
# container's beancounters under vzcore's own parent).
cgroups = "disabled"
netns = "none"
log_driver = "k8s-file"
# podman's default nofile=1048576 needs CAP_SYS_RESOURCE; podman lowers its own nproc to 32768.
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{dir}/events.log"
tmp_dir = "{dir}/libpod-tmp"
volume_path = "{dir}/volumes"
runtime = "{default}"
# Singular in podman 4.3 (the shipped comment's plural is ignored).
runtime_supports_nocgroup = [{nocgroup}]

[engine.runtimes]
{runtimes}

[network]
network_backend = "cni"
network_config_dir = "{dir}/cni"
"""

STORAGE_CONF = """\
[storage]
driver = "overlay"
graphroot = "{dir}/graphroot"
runroot = "{dir}/runroot"
"""


class Podman:
    """podman with private configuration and storage under *workdir*, every call made in
    *mountns*. :meth:`__call__` runs ``podman --runtime RUNTIME ARGS``."""

    def __init__(self, workdir: Path, mountns: MountNamespace, runtimes: Sequence[Path]) -> None:
        self.dir = workdir
        self.mountns = mountns
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "cni").mkdir(exist_ok=True)
        names = [runtime_name(r) for r in runtimes] + [str(r) for r in runtimes]
        (workdir / "containers.conf").write_text(CONTAINERS_CONF.format(
            dir=workdir, default=runtime_name(runtimes[0]),
            nocgroup=", ".join(json.dumps(n) for n in ["crun", *names]),
            runtimes="\n".join(f"{json.dumps(runtime_name(r))} = [{json.dumps(str(r))}]"
                               for r in runtimes)))
        (workdir / "storage.conf").write_text(STORAGE_CONF.format(dir=workdir))
        (workdir / "registries.conf").write_text("unqualified-search-registries = []\n")
        self.env = {**os.environ,
                    "CONTAINERS_CONF": str(workdir / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(workdir / "storage.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(workdir / "registries.conf"),
                    "TMPDIR": str(workdir / "libpod-tmp")}
        (workdir / "libpod-tmp").mkdir(exist_ok=True)

    def argv(self, runtime: Path | None, *args: str) -> list[str]:
        """The full command line of one podman call (for callers that drive it themselves)."""
        rt = ["--runtime", str(runtime)] if runtime is not None else []
        # in our directory: conmon writes files such as "oom" (after an OOM kill in an
        # exec'd process) to the directory it was started in
        return self.mountns.command(["podman", *rt, *args], cwd=self.dir)

    def __call__(self, runtime: Path | None, *args: str, check: bool = True,
                 timeout: float = 120, input: str | None = None,
                 ) -> subprocess.CompletedProcess[str]:
        return run(self.argv(runtime, *args), check=check, timeout=timeout, input=input,
                   env=self.env)

    def import_image(self, tar: Path, name: str = IMAGE) -> None:
        """``podman import`` the rootfs tarball as *name*."""
        self(None, "import", "--change", "CMD=/bin/sh", str(tar), name)

    def cleanup(self) -> None:
        """Remove every container and the storage (its overlay mounts go with the namespace)."""
        self(None, "rm", "--all", "--force", "--time", "0", check=False)
        self(None, "system", "reset", "--force", check=False, timeout=60)


# --- containerd -----------------------------------------------------------------------

CONTAINERD_TOML = """\
version = 2
root = "{dir}/root"
state = "{dir}/state"
# Only what ctr needs: no CRI plugin (it would set up CNI), no other snapshotters.
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.tracing",
                    "io.containerd.tracing.processor.v1.otlp"]
[grpc]
address = "{dir}/containerd.sock"
[ttrpc]
address = "{dir}/containerd.sock.ttrpc"
[debug]
address = "{dir}/debug.sock"
level = "info"
[metrics]
address = ""
[plugins."io.containerd.monitor.v1.cgroups"]
no_prometheus = true
"""


class Containerd:
    """Debian's containerd on a private socket, root and state under *workdir*, in *mountns*."""

    def __init__(self, workdir: Path, mountns: MountNamespace) -> None:
        self.dir = workdir
        self.mountns = mountns
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "config.toml").write_text(CONTAINERD_TOML.format(dir=workdir))
        self.log = open(workdir / "containerd.log", "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(mountns.command(["containerd", "--config",
                                                      str(workdir / "config.toml")], cwd=workdir),
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(300):  # until it answers (a poll, not a timed assertion)
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited: {(workdir / 'containerd.log').read_text()}")
            if self.ctr("version", check=False).returncode == 0:
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"containerd did not answer: {(workdir / 'containerd.log').read_text()}")

    def ctr(self, *args: str, check: bool = True, timeout: float = 120,
            ) -> subprocess.CompletedProcess[str]:
        """``ctr --address SOCKET ARGS`` in the namespace."""
        return run(self.mountns.command(["ctr", "--address", str(self.dir / "containerd.sock"),
                                         *args], cwd=self.dir), check=check, timeout=timeout)

    def stop(self) -> None:
        """Stop containerd (its shims were killed with their tasks by the tests)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


# --- bundles for direct runtime calls ------------------------------------------------

def bundle(dest: Path, rootfs: Path, args: Sequence[str], *, terminal: bool = False,
           annotations: dict[str, str] | None = None) -> Path:
    """An OCI bundle in *dest*: a copy of *rootfs* and a config.json running *args*.

    The config is what ``runc spec`` writes (the runtime spec's defaults: pid, ipc, uts,
    mount and network namespaces, the default mounts, capabilities, masked and readonly
    paths), without a cgroups path."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(rootfs, dest / "rootfs", symlinks=True)
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": terminal, "user": {"uid": 0, "gid": 0}, "args": list(args),
            "env": ["PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"], "cwd": "/",
            "capabilities": {k: caps for k in ("bounding", "effective", "permitted")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "oci",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "nodev", "mode=1777"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
        "annotations": dict(annotations or {}),
    }
    (dest / "config.json").write_text(json.dumps(config, indent=2))
    return dest
