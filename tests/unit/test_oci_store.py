"""vzcore-oci's store (IDs, CT IDs, records) and its host-side hooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vzcore.errors import InvalidSyntax, VzError
from vzcore.oci import hooks
from vzcore.oci.store import NoSuchContainer, Record, Store, check_id


@pytest.mark.parametrize("text", ["abc", "0b41" * 16, "a.b_c+d-e"])
def test_runc_ids_are_accepted(text: str) -> None:
    assert check_id(text) == text


@pytest.mark.parametrize("text", ["", "../x", "a/b", ".hidden", "-x", "a b"])
def test_ids_that_could_be_paths_or_options_are_refused(text: str) -> None:
    with pytest.raises(InvalidSyntax):
        check_id(text)


def test_ctids_skip_records_configs_and_state_files(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.prepare()
    assert store.free_ctid() == 101
    store.save(Record(id="a", ctid=101, bundle="/b", created="now"))  # a killed create's
    (store.paths.conf_dir / "102.conf").write_text("")
    (store.paths.run_dir / "103.json").write_text("{}")
    assert store.free_ctid() == 104
    assert store.load("a").ctid == 101
    with pytest.raises(NoSuchContainer):
        store.load("b")


def test_prepare_rewrites_a_stale_vz_conf(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    store.prepare()
    text = store.paths.vz_conf.read_text()
    assert 'PLUGINS="vzcore.oci.plugin"' in text and "ALLOW_PRIVILEGED" in text
    store.paths.vz_conf.write_text("PLUGINS=old\n")
    store.prepare()
    assert store.paths.vz_conf.read_text() == text


def test_hooks_get_the_state_and_a_failure_stops_or_warns(tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = {"hooks": {"poststop": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"cat >> {out}; echo >> {out}"]},
        {"path": "/bin/sh", "args": ["sh", "-c", "echo broken >&2; exit 3"]},
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo third >> {out}"], "env": ["A=1"]},
    ]}}
    with pytest.raises(VzError, match="poststop hook /bin/sh failed with status 3: broken"):
        hooks.run_on_host(spec, "poststop", {"id": "x", "status": "stopped"})
    assert json.loads(out.read_text().splitlines()[0]) == {"id": "x", "status": "stopped"}
    out.unlink()
    warnings: list[str] = []
    hooks.run_on_host(spec, "poststop", {"id": "x"}, warn=warnings.append)
    assert out.read_text().splitlines()[-1] == "third"
    assert len(warnings) == 1 and "status 3" in warnings[0]
