"""The pure parts of the kernel matrix: kernel names, finding vm-run, the code snapshot."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from vzcore.testing import snapshot
from vzcore.testing.kernels import _vm_name
from vzcore.testing.vm import VM_RUN_ENV, find_vm_run, parse_kernels


def test_kernel_lists() -> None:
    assert parse_kernels("host") == ["host"]
    assert parse_kernels(" host, vm ,vm") == ["host", "vm"]
    assert parse_kernels("vm-hybrid") == ["vm-hybrid"]
    with pytest.raises(ValueError, match="unknown kernel 'vm2'"):
        parse_kernels("host,vm2")
    with pytest.raises(ValueError, match="no kernel"):
        parse_kernels(",")


def test_copy_names() -> None:
    assert _vm_name("test_x", "vm") == "test_x[vm]"
    assert _vm_name("test_x[a-1]", "vm-hybrid") == "test_x[a-1-vm-hybrid]"


def test_vm_run_is_found_beside_the_project_or_as_told(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(VM_RUN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    project = tmp_path / "wt" / "project"
    project.mkdir(parents=True)
    assert find_vm_run(None, project) is None
    shared = tmp_path / "shared/tools/vm-run"
    shared.parent.mkdir(parents=True)
    shared.write_text("#!/bin/sh\n")
    assert find_vm_run(None, project) == str(shared)
    chosen = tmp_path / "my-vm-run"
    chosen.write_text("#!/bin/sh\n")
    monkeypatch.setenv(VM_RUN_ENV, str(chosen))
    assert find_vm_run(None, project) == str(chosen)
    assert find_vm_run(str(shared), project) == str(shared)


def test_snapshot_holds_the_project_with_bytecode_and_the_stdlib(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    (project / "pkg/mod.py").write_text("VALUE = 1\n")
    (project / ".git").mkdir()
    (project / ".git/config").write_text("")
    layers = snapshot.build(tmp_path / "s.tar", project)
    targets = {layer.target: layer.name for layer in layers}
    assert str(project) in targets
    assert layers[0].target != str(project)  # parents before children, stdlib first
    with tarfile.open(tmp_path / "s.tar") as tar:
        names = set(tar.getnames())
    own = targets[str(project)]
    assert f"{own}/pkg/mod.py" in names
    assert any(n.startswith(f"{own}/pkg/__pycache__/mod.") and n.endswith(".pyc") for n in names)
    assert not any(n.startswith(f"{own}/.git") for n in names)
    assert any(n.endswith("/os.py") for n in names)
    assert any("/vzcore/linux/cgroups.py" in n or n.endswith("__editable__.vzcore-0.1.0.pth")
               for n in names)
