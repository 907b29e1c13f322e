"""The actions plugin passes the generic lifecycle contract.  It records nothing: what a
script makes is the admin's, undone by the matching umount script, which every path that
unmounts a CT runs (stop, rollback, and the cleanup after a killed vzctl).  The real part
runs with a mount script that binds a host directory below the CT's root, so the kill at
every start checkpoint proves that no such mount outlives the next ``vzctl stop``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vzcore.testing.lifecycle import LifecycleContract, load_plugin


class TestActionsContract(LifecycleContract):
    plugin = "vzcore_actions.plugin"

    @pytest.fixture
    def real_ct(self, vz_env: Any, vzctl: Any, tmp_path: Path) -> int:
        load_plugin(vz_env, self.plugin)
        vzctl("create", 101, "--ostemplate", "busybox")
        share = tmp_path / "share"
        share.mkdir()
        conf_dir = vz_env.root / "etc/vz/conf"
        for name, body in (
                ("101.mount", f'mkdir -p "$VE_ROOT/mnt/share"\nmount --bind {share} '
                              '"$VE_ROOT/mnt/share"\n'),
                ("101.umount", 'umount "$VE_ROOT/mnt/share"\n')):
            (conf_dir / name).write_text(f"#!/bin/sh\nset -e\n{body}")
            (conf_dir / name).chmod(0o755)
        return 101
