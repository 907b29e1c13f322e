"""The mapping of beancounters to kernel settings, on cgroup v1 and v2 (pure)."""

from __future__ import annotations

from vzcore_beancounters.limits import Limits, from_config
from vzcore_beancounters.plan import SHM_DEFAULTS, plan, rlimits

NR_OPEN = 1048576


def limits(**config: str) -> Limits:
    return from_config(101, config.get, 1000)


def writes(settings: object) -> dict[str, int | None]:
    return {w.filename: w.value for w in settings.cgroup}  # type: ignore[attr-defined]


def test_nothing_is_written_for_an_unlimited_ct() -> None:
    for version in (1, 2):
        settings = plan(limits(), version, nr_open=NR_OPEN)
        assert settings.cgroup == ()
        assert settings.rlimits == {}
        assert settings.sysctls == {}
        assert settings.devpts_max is None and settings.shm_size is None


def test_vswap_on_v1() -> None:
    settings = plan(limits(PHYSPAGES="0:64M", SWAPPAGES="0:32M", NUMPROC="40:50"), 1,
                    nr_open=NR_OPEN)
    assert writes(settings) == {
        "memory.limit_in_bytes": 64 * 2**20,
        "memory.memsw.limit_in_bytes": 96 * 2**20,
        "pids.max": 40,  # ordinary forks fail at the barrier
    }


def test_v1_without_host_swap_sets_no_memsw_limit() -> None:
    settings = plan(limits(PHYSPAGES="0:64M", SWAPPAGES="0:0"), 1, nr_open=NR_OPEN,
                    host_swap=False)
    assert writes(settings) == {"memory.limit_in_bytes": 64 * 2**20}


def test_vswap_on_v2() -> None:
    settings = plan(limits(PHYSPAGES="32M:64M", SWAPPAGES="0:0"), 2, nr_open=NR_OPEN)
    assert writes(settings) == {"memory.max": 64 * 2**20, "memory.swap.max": 0,
                                "memory.high": 32 * 2**20}


def test_kmem_and_tcp_on_v1_are_verified_writes() -> None:
    settings = plan(limits(KMEMSIZE="1M:2M", TCPSNDBUF="100K:200K", TCPRCVBUF="100K:300K"), 1,
                    nr_open=NR_OPEN)
    by_name = {w.filename: w for w in settings.cgroup}
    assert by_name["memory.kmem.limit_in_bytes"].value == 2 * 2**20
    assert by_name["memory.kmem.limit_in_bytes"].verify
    assert by_name["memory.kmem.tcp.limit_in_bytes"].value == 500 * 1024
    # v2 has no such files: kernel memory and socket buffers count toward memory.max.
    assert "memory.kmem.limit_in_bytes" not in writes(plan(limits(KMEMSIZE="1M:2M"), 2,
                                                           nr_open=NR_OPEN))


def test_numproc_above_pid_max_is_unlimited() -> None:
    assert writes(plan(limits(NUMPROC="5000000"), 2, nr_open=NR_OPEN)) == {}


def test_rlimits_soft_is_barrier_hard_is_limit() -> None:
    got = rlimits(limits(NUMFILE="64:128", LOCKEDPAGES="2048:4096", NUMSIGINFO="256"), NR_OPEN)
    assert got == {"RLIMIT_NOFILE": (64, 128), "RLIMIT_MEMLOCK": (8 * 2**20, 16 * 2**20),
                   "RLIMIT_SIGPENDING": (256, 256)}
    assert rlimits(limits(NUMFILE="64:unlimited"), 4096)["RLIMIT_NOFILE"] == (64, 4096)


def test_shmpages_numpty_ipc_devpts_and_dev_shm() -> None:
    settings = plan(limits(SHMPAGES="256", NUMPTY="4"), 1, nr_open=NR_OPEN)
    assert settings.sysctls == {"kernel.shmall": 256, "kernel.shmmax": 2**20, "kernel.shmmni": 256}
    assert settings.shm_size == 2**20
    assert settings.devpts_max == 4


def test_live_change_writes_only_what_changed_including_lifted_limits() -> None:
    settings = plan(limits(NUMPROC="unlimited", PHYSPAGES="0:64M"), 1, nr_open=NR_OPEN,
                    changed={"numproc"})
    assert writes(settings) == {"pids.max": None}
    settings = plan(limits(), 1, nr_open=NR_OPEN, changed={"shmpages", "numpty", "numfile"})
    assert settings.sysctls == SHM_DEFAULTS
    assert settings.shm_size == 64 * 1024 * 1024  # the core's default size, as at start
    assert settings.devpts_max == 1 << 20
    assert settings.rlimits == {"RLIMIT_NOFILE": (NR_OPEN, NR_OPEN)}


def test_live_ram_change_rewrites_memsw_too_on_v1() -> None:
    settings = plan(limits(PHYSPAGES="0:128M", SWAPPAGES="0:64M"), 1, nr_open=NR_OPEN,
                    changed={"physpages"})
    assert writes(settings) == {"memory.limit_in_bytes": 128 * 2**20,
                                "memory.memsw.limit_in_bytes": 192 * 2**20,
                                "memory.soft_limit_in_bytes": None}
