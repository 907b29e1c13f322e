"""vz_layout_create: a third party's layout makes its area and mounts it for the template,
which fills it; the engine unmounts it after the create.  (A tmpfs layout keeps the test
free of any disk tool.)"""

from __future__ import annotations

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

RAMFS = '''
from vzcore import areas, hookimpl
from vzcore.linux import mounts
from vzcore.plugin import PluginInfo


@hookimpl
def vz_plugin_info():
    return PluginInfo(subsystem="ramdisk", summary="test layout", variants={"VE_LAYOUT": ("ram",)})


@hookimpl
def vz_layout_create(ct):
    ct.private.mkdir(parents=True)
    areas.write_marker(ct.private, ct.ctid)
    (ct.private / "made-by-layout").write_text("yes")
    ct.root.mkdir(parents=True, exist_ok=True)
    mounts.mount("ram", ct.root, "tmpfs", 0, "size=16m")


@hookimpl
def vz_umount(ct):
    if ct.layout == "ram":
        if (ct.root / "bin/busybox").exists():  # what the template put there
            (ct.private / "filled").write_text("yes")
        mounts.umount(ct.root)


@hookimpl
def vz_destroy(ct):
    if ct.layout == "ram":
        import shutil
        shutil.rmtree(ct.private, ignore_errors=True)
'''


def test_the_template_fills_what_the_layout_mounted(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vz_env.add_plugin_module("vz_test_ramdisk", RAMFS)
    vzctl("create", 101, "--ostemplate", "busybox", "--layout", "ram")
    assert (vz_env.private(101) / "made-by-layout").exists()
    assert (vz_env.private(101) / "filled").exists()  # the template filled the mounted area
    assert not (vz_env.private(101) / "bin").exists()  # the tree went to VE_ROOT, not here
    assert not mounts.mounts_below(vz_env.root)  # the engine unmounted the new area
    vzctl("destroy", 101)
    assert not vz_env.private(101).exists()


def test_a_failed_layout_create_leaves_nothing(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vz_env.add_plugin_module("vz_test_ramdisk", RAMFS.replace('"size=16m"', '"size=nonsense"'))
    out = vzctl("create", 101, "--ostemplate", "busybox", "--layout", "ram", check=False)
    assert out.returncode != 0 and "vz_layout_create" in out.stderr, out.stderr
    assert not vz_env.conf(101).exists() and not vz_env.private(101).exists()
    assert not mounts.mounts_below(vz_env.root)
