"""``vzctl template list|remove|create`` against the Debian templates contrib/test.sh
built (linked into each test's own cache, so the shared cache is never changed), and
refusals of bad input that leave everything as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, reap_orphans, vzctl_binary
from vzcore.testing.templates import DebianTemplate

Templates = Callable[[str], DebianTemplate]


def cache_of(vz_env: VzEnv) -> Path:
    return vz_env.root / "vz/template/cache"


def snapshot(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")) if directory.exists() else []


def test_list_shows_name_size_date_and_init(debian_template: Templates, vz_env: VzEnv,
                                            vzctl: Vzctl) -> None:
    for init in ("systemd", "sysvinit"):
        debian_template(init).install(vz_env)
    out = vzctl("template", "list").stdout.splitlines()
    assert out[0].split() == ["NAME", "SIZE", "CREATED", "INIT"]
    rows = {line.split()[0]: line.split() for line in out[1:]}
    assert rows["debian-12-x86_64-minimal"][3] == "systemd"
    assert rows["debian-12-x86_64-minimal-sysvinit"][3] == "sysvinit"
    meta = json.loads(debian_template("systemd").metadata.read_text())
    assert rows["debian-12-x86_64-minimal"][1] == f"{meta['size'] / 1e6:.1f}M"
    assert rows["debian-12-x86_64-minimal"][2] == meta["created"]
    listed = {row["name"]: row for row in json.loads(vzctl("template", "list", "--json").stdout)}
    systemd = listed["debian-12-x86_64-minimal"]
    assert (systemd["init"], systemd["flavour"], systemd["size"]) == ("systemd", "minimal", meta["size"])
    assert systemd["metadata"]["packages"] == meta["packages"]


def test_list_shows_a_cache_without_metadata(vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> None:
    """A precreated OpenVZ tarball has no metadata: listed by name with the file's date."""
    cache = cache_of(vz_env)
    cache.mkdir(parents=True)
    (tmp_path / "etc").mkdir()
    subprocess.run(["tar", "-C", str(tmp_path / "etc"), "-czf", str(cache / "centos-7-x86_64.tar.gz"), "."],
                   check=True)
    (cache / ".build-debian-12-x86_64-minimal").mkdir()  # a build under way is not listed
    rows = json.loads(vzctl("template", "list", "--json").stdout)
    assert [(r["name"], r["init"], r["metadata"]) for r in rows] == [("centos-7-x86_64", None, None)]


def test_remove_says_which_cts_use_it(debian_template: Templates, vz_env: VzEnv,
                                      vzctl: Vzctl) -> None:
    template = debian_template("systemd")
    template.install(vz_env)
    conf = vz_env.conf(201)
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(f'OSTEMPLATE="{template.name}"\n')
    result = vzctl("template", "remove", template.name)
    assert f"Template {template.name} removed" in result.stdout and "CTs 201" in result.stdout
    assert not (cache_of(vz_env) / template.tarball.name).exists()
    assert not (cache_of(vz_env) / template.metadata.name).exists()
    assert template.tarball.exists() and template.metadata.exists()  # the shared cache stays
    assert "template" not in vzctl("template", "list").stdout.split("\n", 1)[1]


def test_remove_refuses_an_unknown_name(vz_env: VzEnv, vzctl: Vzctl) -> None:
    cache_of(vz_env).mkdir(parents=True)
    before = snapshot(vz_env.root)
    for name, code, words in (("debian-99-x86_64", 91, ["no template 'debian-99-x86_64'", "template list"]),
                              ("../etc", 21, ["invalid template name", "DIST-VERSION-ARCH"])):
        result = vzctl("template", "remove", name, check=False)
        assert result.returncode == code, result.stderr
        assert len(result.stderr.splitlines()) == 1 and all(w in result.stderr for w in words)
    assert snapshot(vz_env.root) == before


def test_remove_cleans_an_interrupted_build(vz_env: VzEnv, vzctl: Vzctl) -> None:
    """What a build killed mid-way leaves (its tree, its log, metadata renamed in before
    the tarball) is removed by ``template remove``."""
    cache = cache_of(vz_env)
    build = cache / ".build-debian-12-x86_64-minimal"
    (build / "root/usr/bin").mkdir(parents=True)
    (build / "root/usr/bin/x").write_text("x")
    (build / "root/lib").symlink_to("/usr/lib")  # never followed out
    (build / "debootstrap.log").write_text("I: Retrieving ...\n")
    (cache / "debian-12-x86_64-minimal.json").write_text("{}")
    result = vzctl("template", "remove", "debian-12-x86_64-minimal")
    assert "interrupted build" in result.stdout
    assert [p.name for p in cache.iterdir()] == [".debian-12-x86_64-minimal.lock"]


@pytest.mark.parametrize(("args", "words"), [
    (("debian-9",), ["unknown distribution 'debian-9'", "debian-12"]),
    (("ubuntu-24",), ["unknown distribution 'ubuntu-24'"]),
    (("debian-12", "--flavour", "huge"), ["--flavour 'huge'", "minimal, web"]),
    (("debian-12", "--init", "upstart"), ["--init 'upstart'", "systemd, sysvinit"]),
    (("debian-12", "--packages", "vim,Bad;Name"), ["--packages", "'Bad;Name'"]),
    (("debian-12", "--mirror", "ftp://old.example/debian"), ["--mirror", "http://"]),
    (("debian-12", "--name", "../../etc"), ["invalid template name"]),
])
def test_create_refuses_bad_input(vz_env: VzEnv, vzctl: Vzctl, args: tuple[str, ...],
                                  words: list[str]) -> None:
    before = snapshot(vz_env.root)
    result = vzctl("template", "create", *args, check=False)
    assert result.returncode == 21, result.stderr
    assert len(result.stderr.splitlines()) == 1 and all(w in result.stderr for w in words), result.stderr
    assert snapshot(vz_env.root) == before


def test_create_keeps_or_refuses_an_existing_template(debian_template: Templates, vz_env: VzEnv,
                                                      vzctl: Vzctl) -> None:
    """``--reuse`` keeps a cache of the same recipe (no mirror needed: this runs without
    network); without it an existing template is refused, naming the fix, and so is one
    without metadata (not vzctl's to replace) even with ``--reuse``."""
    template = debian_template("sysvinit")
    template.install(vz_env)
    kept = vzctl("template", "create", "debian-12", "--init", "sysvinit", "--reuse")
    assert "kept" in kept.stderr and "same recipe" in kept.stderr
    assert f"Template {template.name} is ready (sysvinit" in kept.stdout
    refused = vzctl("template", "create", "debian-12", "--init", "sysvinit", check=False)
    assert refused.returncode == 21
    assert "exists" in refused.stderr and f"vzctl template remove {template.name}" in refused.stderr
    assert (cache_of(vz_env) / template.tarball.name).is_symlink()
    (cache_of(vz_env) / template.metadata.name).unlink()
    foreign = vzctl("template", "create", "debian-12", "--init", "sysvinit", "--reuse", check=False)
    assert foreign.returncode == 21 and "not built by vzctl" in foreign.stderr
    assert (cache_of(vz_env) / template.tarball.name).is_symlink()


@pytest.mark.root
def test_a_failed_build_leaves_only_its_log(vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> None:
    """The real debootstrap against a mirror that is not there: one error line naming the
    log; no tarball; the next remove cleans the log."""
    result = vzctl("template", "create", "debian-12", "--mirror", f"file://{tmp_path}/no-mirror",
                   check=False, timeout=300)
    assert result.returncode == 47
    progress = result.stderr.strip().splitlines()[:-1]  # the real debootstrap's stages, shown
    assert progress[:2] == [
        f"template debian-12-x86_64-minimal: debootstrap bookworm from file://{tmp_path}/no-mirror",
        "template debian-12-x86_64-minimal: reading the mirror's release file"]
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("Error: template create debian-12-x86_64-minimal:") and "full log:" in error
    cache = cache_of(vz_env)
    assert sorted(p.name for p in cache.iterdir()) == [".build-debian-12-x86_64-minimal",
                                                      ".debian-12-x86_64-minimal.lock"]
    assert [p.name for p in (cache / ".build-debian-12-x86_64-minimal").iterdir()] == ["debootstrap.log"]
    assert "interrupted build" in vzctl("template", "remove", "debian-12-x86_64-minimal").stdout
    assert not (cache / ".build-debian-12-x86_64-minimal").exists()


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.root
def test_a_killed_build_leaves_nothing_running(vz_env: VzEnv, tmp_path: Path) -> None:
    """SIGKILL to vzctl while debootstrap runs (blocked reading a mirror whose release file
    is a FIFO nobody writes): debootstrap and everything it started die with it (no
    mount of the build is left: its namespace is gone), and ``template remove`` cleans up."""
    dists = tmp_path / "mirror/dists/bookworm"
    dists.mkdir(parents=True)
    for name in ("InRelease", "Release"):
        os.mkfifo(dists / name)
    proc = subprocess.Popen([vzctl_binary(), "template", "create", "debian-12", "--mirror",
                             f"file://{tmp_path}/mirror"], env=vz_env.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:  # debootstrap is reading the release file: it blocks there
        if "release file" in line:
            break
    build = cache_of(vz_env) / ".build-debian-12-x86_64-minimal"
    deadline = time.monotonic() + 60
    while not any(Path(f"/proc/{p}/comm").read_text().strip() == "cp"
                  for p in _descendants(proc.pid) if _alive(p)):
        assert time.monotonic() < deadline, "debootstrap never reached the mirror"
        time.sleep(0.1)
    started = _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while [p for p in started if _alive(p)]:
        reap_orphans()  # they are reparented to this test process (a subreaper)
        assert time.monotonic() < deadline, f"left running: {[p for p in started if _alive(p)]}"
        time.sleep(0.1)
    reap_orphans()
    assert mounts.mounts_below(build) == []
    assert build.exists()
    result = subprocess.run([vzctl_binary(), "template", "remove", "debian-12-x86_64-minimal"],
                            env=vz_env.env, capture_output=True, text=True, check=True)
    assert "interrupted build" in result.stdout and not build.exists()


def test_a_build_killed_after_its_commit_point_is_completed(debian_template: Templates,
                                                            vz_env: VzEnv, vzctl: Vzctl) -> None:
    """Killed between renaming the new tarball in and its metadata: the next create of the
    name moves the staged metadata in (roll forward), and ``--reuse`` then keeps it; the
    previous tarball of another suffix goes."""
    template = debian_template("systemd")
    cache = cache_of(vz_env)
    build = cache / f".build-{template.name}"
    build.mkdir(parents=True)
    (cache / template.tarball.name).symlink_to(template.tarball)  # the new one, committed
    (build / template.metadata.name).write_text(template.metadata.read_text())  # staged
    old = json.loads(template.metadata.read_text()) | {"recipe": "old", "size": 3,
                                                       "tarball": f"{template.name}.tar.gz"}
    (cache / template.metadata.name).write_text(json.dumps(old))
    (cache / f"{template.name}.tar.gz").write_bytes(b"old")  # the previous build's
    kept = vzctl("template", "create", "debian-12", "--reuse")
    assert "kept" in kept.stderr, kept.stderr
    moved_in = json.loads((cache / template.metadata.name).read_text())
    assert moved_in == json.loads(template.metadata.read_text())
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [f".{template.name}.lock", template.tarball.name, template.metadata.name])
