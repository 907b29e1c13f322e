"""config.json: what vzcore-oci refuses (by field, before anything is made) and how OCI's
resources and annotations become vzctl options; the CLI's log lines and signals."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from vzcore.errors import InvalidValue, VzError
from vzcore.oci import spec
from vzcore.oci.cli import Log, features, main
from vzcore.oci.runtime import parse_signal


def base() -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "capabilities": {"bounding": ["CAP_KILL"]}},
        "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]},
    }


def bundle(tmp_path: Path, config: dict[str, Any]) -> spec.Bundle:
    (tmp_path / "rootfs").mkdir(exist_ok=True)
    (tmp_path / "config.json").write_text(json.dumps(config))
    return spec.Bundle.load(str(tmp_path))


def test_a_plain_spec_passes_and_unknown_properties_are_accepted(tmp_path: Path) -> None:
    config = base()
    config["x-vendor-extension"] = {"anything": 1}  # the spec's extensibility rule
    spec.check(bundle(tmp_path, config))


@pytest.mark.parametrize(("change", "field"), [
    (lambda c: c.update(ociVersion="0.9"), "ociVersion"),
    (lambda c: c.update(windows={"x": 1}), "windows"),
    (lambda c: (c["linux"]["namespaces"].pop(3), c.update(hostname="x")), "hostname"),
    (lambda c: (c["linux"]["namespaces"].pop(1),
                c["linux"].update(sysctl={"net.ipv4.ip_forward": "1"})),
     "linux.sysctl.net.ipv4.ip_forward"),
    (lambda c: c["linux"].update(sysctl={"vm.swappiness": "1"}), "linux.sysctl.vm.swappiness"),
    (lambda c: (c["linux"]["namespaces"].pop(2),
                c.update(annotations={"org.openvz.shmpages": "100"})),
     "annotations.org.openvz.shmpages"),
    (lambda c: (c["linux"]["namespaces"].pop(4), c["linux"]["namespaces"].append({"type": "user"})),
     "linux.namespaces"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user", "path": "/proc/1/ns/user"}),
     r"linux.namespaces\[5\].path"),
    (lambda c: c["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),
    (lambda c: c["linux"].update(namespaces=[*c["linux"]["namespaces"], {"type": "user"}],
                                 uidMappings=[{"containerID": 1, "hostID": 1000, "size": 10}]),
     "linux.uidMappings"),
    (lambda c: c["linux"].update(namespaces=[*c["linux"]["namespaces"], {"type": "user"}],
                                 uidMappings=[{"containerID": 0, "hostID": 1000, "size": 10},
                                              {"containerID": 5, "hostID": 3000, "size": 10}],
                                 gidMappings=[{"containerID": 0, "hostID": 1000, "size": 10}]),
     "linux.uidMappings"),
    (lambda c: c["linux"].update(namespaces=[*c["linux"]["namespaces"], {"type": "user"}],
                                 uidMappings=[{"containerID": 0, "hostID": 1000, "size": 10}],
                                 gidMappings=[{"containerID": 0, "hostID": 1000, "size": "10"}]),
     r"linux.gidMappings\[0\]"),
    (lambda c: (c["linux"].update(namespaces=[*c["linux"]["namespaces"], {"type": "user"}],
                                  uidMappings=[{"containerID": 0, "hostID": 1000, "size": 10}],
                                  gidMappings=[{"containerID": 0, "hostID": 1000, "size": 10}]),
                c["process"]["user"].update(uid=10)),
     "process.user.uid"),
    (lambda c: c["linux"]["namespaces"].append({"type": "pid", "path": "/proc/1/ns/pid"}),
     r"linux.namespaces\[5\].type"),
    (lambda c: c["linux"].update(intelRdt={"closID": "x"}), "linux.intelRdt"),
    (lambda c: c["linux"].update(resources={"blockIO": {"weight": 10}}),
     "linux.resources.blockIO"),
    (lambda c: c["linux"].update(resources={"memory": {"kernel": 1 << 20}}),
     "linux.resources.memory.kernel"),
    (lambda c: c["linux"].update(resources={"cpu": {"realtimeRuntime": 5}}),
     "linux.resources.cpu.realtimeRuntime"),
    (lambda c: c["process"].update(apparmorProfile="x"), "process.apparmorProfile"),
    (lambda c: c["process"]["capabilities"].update(effective=["CAP_SYS_PTRACE"]),
     "process.capabilities.effective"),
    (lambda c: c["process"]["capabilities"].update(bounding=["CAP_NOPE"]),
     "process.capabilities.bounding"),
    (lambda c: c["process"].update(rlimits=[{"type": "RLIMIT_NOPE", "soft": 1, "hard": 1}]),
     r"process.rlimits\[0\].type"),
    (lambda c: c.update(hooks={"createContainer": [{"path": "true"}]}),
     r"hooks.createContainer\[0\].path"),
    (lambda c: c.update(mounts=[{"destination": "/x", "type": "bind", "source": "/tmp",
                                 "uidMappings": [{"containerID": 0, "hostID": 1, "size": 1}]}]),
     r"mounts\[0\].uidMappings"),
])
def test_what_vzcore_cannot_honour_is_refused_by_field(tmp_path: Path, change: Any,
                                                       field: str) -> None:
    config = base()
    change(config)
    with pytest.raises(VzError, match=rf"config\.json: {field}: "):
        spec.check(bundle(tmp_path, config))


def test_a_user_namespace_gets_exactly_the_specs_ranges(tmp_path: Path) -> None:
    """Several ranges of any size (podman's --uidmap, Kubernetes' user-namespaced pods)."""
    config = base()
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1},
                                      {"containerID": 1, "hostID": 300001, "size": 1999}]
    config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 210000, "size": 3000}]
    config["process"]["user"].update(uid=1000, gid=2999)
    spec.check(bundle(tmp_path, config))
    idmap = spec.id_map(config["linux"])
    assert idmap.root == (200000, 210000)
    assert idmap.uid_map() == "0 200000 1\n1 300001 1999\n"
    assert idmap.gid_map() == "0 210000 3000\n"


def test_a_namespace_path_must_be_a_namespace_of_that_type(tmp_path: Path) -> None:
    config = base()
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/self/ns/uts"}
    with pytest.raises(InvalidValue, match="is not a network namespace"):
        spec.check(bundle(tmp_path, config))
    config["linux"]["namespaces"][1] = {"type": "network", "path": "/proc/self/ns/net"}
    spec.check(bundle(tmp_path, config))


def test_namespaces_left_out_are_shared_and_those_with_a_path_joined(tmp_path: Path) -> None:
    config = base()
    config["linux"]["namespaces"] = [{"type": "network", "path": "/proc/self/ns/net"},
                                     {"type": "mount", "path": "/proc/self/ns/mnt"},
                                     {"type": "pid", "path": "/proc/self/ns/pid_for_children"},
                                     {"type": "uts"}]
    spec.check(bundle(tmp_path, config))
    linux = config["linux"]
    assert spec.namespace_paths(linux) == {"net": "/proc/self/ns/net", "mnt": "/proc/self/ns/mnt",
                                           "pid": "/proc/self/ns/pid_for_children"}
    assert spec.shared_namespaces(linux) == ["cgroup", "ipc"]
    assert spec.shared_namespaces({"namespaces": []}) == ["cgroup", "ipc", "mnt", "net", "pid",
                                                          "uts"]


def test_resources_and_annotations_become_vzctl_options(tmp_path: Path) -> None:
    config = base()
    config["linux"]["resources"] = {
        "memory": {"limit": 64 << 20, "reservation": 32 << 20, "swap": 128 << 20},
        "pids": {"limit": 50},
        "cpu": {"shares": 2048, "quota": 50000, "period": 100000, "cpus": "0-1"},
        "devices": [{"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"}],
    }
    config["annotations"] = {"org.openvz.cpuunits": "3000", "org.openvz.privvmpages": "1G",
                             "io.kubernetes.other": "x"}
    options = spec.options(bundle(tmp_path, config))
    assert options == {
        "ram": [str(64 << 20)],
        "physpages": [f"{(32 << 20) // 4096}:{(64 << 20) // 4096}"],
        "swap": [str(64 << 20)],
        "numproc": ["50"],
        "cpuunits": ["3000"],  # the annotation wins over cpu.shares (2000)
        "cpulimit": ["50"],
        "cpumask": ["0-1"],
        "devices": ["c:10:200:rw"],
        "privvmpages": ["1G"],
    }


def test_no_limit_is_no_option() -> None:
    assert spec.resource_options({"memory": {"limit": -1}, "pids": {"limit": 0},
                                  "cpu": {"quota": -1, "shares": 0}}) == {}


def test_capabilities_beyond_the_default_are_granted() -> None:
    assert spec.capability_setting({"bounding": ["CAP_SYS_TIME", "CAP_KILL"]}) == \
        "kill:on sys_time:on"
    assert spec.capability_setting({}) is None


@pytest.mark.parametrize(("text", "number"), [
    (None, signal.SIGTERM), ("9", 9), ("KILL", 9), ("SIGTERM", 15), ("hup", 1),
    ("SIGRTMIN+3", signal.SIGRTMIN + 3),
])
def test_signals(text: str | None, number: int) -> None:
    assert parse_signal(text) == number


@pytest.mark.parametrize("text", ["0", "999", "NOPE", "-1"])
def test_bad_signals(text: str) -> None:
    with pytest.raises(InvalidValue, match="invalid signal"):
        parse_signal(text)


def test_json_log_lines_are_what_conmon_and_containerd_parse(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "log.json"
    code = main(["--root", str(tmp_path / "root"), "--log", str(log), "--log-format", "json",
                 "state", "nosuch"])
    assert code == 1
    line = json.loads(log.read_text().splitlines()[-1])
    assert line["level"] == "error" and "nosuch does not exist" in line["msg"]
    assert line["time"].endswith("Z")
    assert "nosuch does not exist" in capsys.readouterr().err
    Log(str(log), "text", False).error("plain")
    assert log.read_text().splitlines()[-1].endswith('level=error msg="plain"')


def test_systemd_cgroup_is_refused_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--root", str(tmp_path), "--systemd-cgroup", "list"]) == 1
    assert "systemd cgroup manager is not supported" in capsys.readouterr().err


def test_features_name_what_is_supported() -> None:
    document = features()
    assert document["linux"]["seccomp"]["enabled"] is True
    assert "CAP_SYS_ADMIN" in document["linux"]["capabilities"]
    assert "createContainer" in document["hooks"]
    json.dumps(document)
