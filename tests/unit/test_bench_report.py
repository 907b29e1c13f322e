"""contrib/bench/run's report, plots and parsers on a small synthetic result set (no root,
nothing started)."""

from __future__ import annotations

import struct
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "contrib/bench"))

from vzbench import density, report, resume, web  # noqa: E402
from vzbench.__main__ import parse, settings  # noqa: E402
from vzbench.seed import per_ct_starts  # noqa: E402

WRK_OUTPUT = """\
Running 8s test @ http://10.200.0.1:80/
  20 threads and 40 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.52ms    2.10ms  40.00ms   90.00%
    Req/Sec    60.00     10.00   100.00     70.00%
  9600 requests in 8.00s, 42.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
Requests/sec:   1200.00
Transfer/sec:      5.25MB
"""


def seed_row(n: int, ct: float, host: float) -> dict[str, Any]:
    sample = {"req_s": 0.0, "requests": 0.0, "socket_errors": 1.0, "non_2xx": 0.0}
    return {
        "cts": n, "template": "debian-12-x86_64-web-sysvinit", "boot_all_s": n * 0.2,
        "serving_after_s": n * 0.3, "ct_req_min": ct * 60, "host_req_min": host * 60,
        "ratio": ct / host, "still_serving": n,
        "throughput": {"ct": [dict(sample, req_s=ct)] * 2, "host": [dict(sample, req_s=host)] * 2},
        "memory": {"cts": n, "estimate_mib_per_ct": 12.5, "memavailable_drop_mib_per_ct": 14.0,
                   "memcg_usage_mib_per_ct": 9.0, "memcg_anon_mib_per_ct": 7.0,
                   "memcg_cache_mib_per_ct": 0.5, "memcg_kmem_mib_per_ct": 1.5,
                   "kernel_uncharged_mib_per_ct": 0.8, "pss_mib_per_ct": 10.2,
                   "processes_per_ct": 15.0, "host_helpers": 2, "host_helpers_pss_mib": 12.0,
                   "programs": {"apache2": {"processes": 9.0, "pss_mib": 4.0, "pss_anon_mib": 2.0,
                                            "rss_mib": 30.0},
                                "exim4": {"processes": 1.0, "pss_mib": 3.0, "pss_anon_mib": 2.5,
                                          "rss_mib": 5.0}}},
        "host_memory": {"memavailable_drop_mib_per_server": 5.0, "pss_mib_per_server": 4.0,
                        "processes_per_server": 9.0},
    }


def lxc_row(row: dict[str, Any]) -> dict[str, Any]:
    sample = {"req_s": 900.0, "requests": 0.0, "socket_errors": 0.0, "non_2xx": 0.0}
    row["throughput"]["lxc"] = [sample] * 2
    row.update(lxc_req_min=54000.0, lxc_ratio=0.9, lxc_serving_s=30.0,
               lxc_memory={"pss_mib_per_ct": 11.0, "monitor_pss_mib_per_ct": 1.5,
                           "memcg_usage_mib_per_ct": 10.0, "memavailable_drop_mib_per_ct": 13.0,
                           "processes_per_ct": 15.0})
    return row


@pytest.fixture
def results() -> dict[str, Any]:
    return {
        "settings": {"quick": True, "init": "sysvinit", "seed_cts": [10, 20], "seed_rounds": 2,
                     "seed_seconds": 8},
        "parts": ["seed", "latency", "density", "resources"],
        "machine": {"date": "2026-12-06 10:00 UTC", "host": "vm", "cpu": "Test CPU", "cpus": 2,
                    "memory_gib": 23.5, "kernel": "6.18.0", "debian": "12.11",
                    "cgroups": "v1 (9 hierarchies)", "python": "3.11.2", "vzcore": "0.1.0",
                    "tools": {"wrk": "wrk 4.1.0", "runc": "runc version 1.1.5"},
                    "load_start": [3.5, 2.0, 1.0], "load_end": [4.0, 2.5, 1.2]},
        "load": {"seed": {"before": [3.5, 2.0, 1.0], "after": [4.0, 2.5, 1.2]}},
        "seed": [seed_row(10, 1000.0, 1000.0), lxc_row(seed_row(20, 980.0, 1000.0))],
        "latency": {"medians_ms": {"vzctl start": 150.0, "runc run": 60.0, "systemd-nspawn": 200.0,
                                   "unshare + chroot": 5.0},
                    "samples_ms": {"vzctl start": [140.0, 150.0, 160.0], "runc run": [60.0] * 3,
                                   "systemd-nspawn": [200.0] * 3, "unshare + chroot": [5.0] * 3},
                    "runs": {"vzctl start": 3, "runc run": 3, "systemd-nspawn": 3,
                             "unshare + chroot": 3},
                    "failures": {"crun run": "crun: cgroups in hybrid mode not supported"},
                    "cpu_medians_ms": {"vzctl start": 95.0, "runc run": 20.0},
                    "first_start_ms": {"wall": 400.0, "cpu": 110.0},
                    "profile": {"total": 170.0, "imports": 90.0, "beancounters": 20.0}},
        "density": {"start_s": [0.3] * 10 + [0.36] * 10, "largest_answering": 20,
                    "stopped_by": "reached the limit of 20 CTs set for this run",
                    "probes": [{"running": 10, "silent": 0, "memavailable_mib": 20000.0,
                                "load1": 3.0},
                               {"running": 20, "silent": 0, "memavailable_mib": 19800.0,
                                "load1": 3.2}],
                    "flatness": density.flatness([0.3] * 10 + [0.36] * 10)},
        "errors": {"resources": "RuntimeError: vzctl create 205 failed"},
    }


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_headlines_state_each_figure_on_its_own_line(results: dict[str, Any]) -> None:
    lines = report.headlines(results)
    assert "throughput ratio CT/host: 0.98" in lines  # the largest N: 980 / 1000
    assert "throughput ratio CT/host: 1.00" in lines
    assert "throughput ratio LXC/host: 0.90" in lines
    assert "LXC memory per container (PSS + its lxc-start monitor): 12.5 MiB" in lines
    assert "host memory per running CT (PSS + kernel): 12.5 MiB" in lines
    assert "vzctl start / runc run: 2.50" in lines
    assert "vzctl start CPU time (user+sys) median: 95.0 ms" in lines
    assert "start time last/first tenth of CTs: 1.20" in lines
    assert "resources: FAILED: RuntimeError: vzctl create 205 failed" in lines


def test_report_and_plots_are_written(results: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install matplotlib)")
    written = report.write(results, tmp_path)
    assert sorted(p.name for p in written) == ["density.png", "latency.png", "memory.png",
                                               "report.md", "throughput.png"]
    assert png_size(tmp_path / "throughput.png") == (640, 400)
    assert png_size(tmp_path / "latency.png")[0] == 700
    text = (tmp_path / "report.md").read_text()
    assert "| 20 | 4.0 | 6.0 | 58,800 | 60,000 | **0.98** | >= 0.97 | 54,000 | 0.90 | 2 / 2 / 0 |" in text
    assert "| 10 | 2.0 | 3.0 | 60,000 | 60,000 | **1.00** | >= 0.97 | - | - | 2 / 2 / - |" in text
    assert "| 20 | 11.0 | 1.5 | 10.0 | 13.0 | 15.0 | 30.0 |" in text  # LXC memory
    assert "within 3x `runc run` (150 ms against 180 ms: met)" in text
    assert "| vzctl start | 150.0 | 3 | 2.5 | 95.0 |" in text  # with its CPU time
    assert "| unshare + chroot | 5.0 | 3 | 0.1 | - |" in text
    assert "the first start on the host, which starts both, took 400 ms" in text
    assert "faster than `systemd-nspawn` (met: 200.0 ms)" in text
    assert "* crun run could not be measured: crun: cgroups in hybrid mode" in text
    assert "| apache2 | 9.0 | 4.0 | 2.0 | 30.0 |" in text
    assert "This part failed in this run: `RuntimeError: vzctl create 205 failed`." in text
    assert "2 CPUs (Test CPU), 23.5 GiB; Linux 6.18.0" in text
    assert "![latency](latency.png)" in text and "![density](density.png)" in text


def test_a_part_not_run_is_said_so(results: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install matplotlib)")
    for part in ("latency", "density"):
        del results[part]
    results["errors"] = {}
    written = report.write(results, tmp_path)
    assert {p.name for p in written} == {"report.md", "throughput.png", "memory.png"}
    text = (tmp_path / "report.md").read_text()
    assert text.count("Not run this time") == 3  # latency, density, resources


def test_wrk_output_and_boot_all_progress_are_parsed() -> None:
    figures = web.parse_wrk(WRK_OUTPUT)
    assert figures["req_s"] == 1200.0
    assert figures["requests"] == 9600
    assert figures["latency_avg_ms"] == pytest.approx(3.52)
    assert figures["socket_errors"] == 3
    with pytest.raises(RuntimeError, match="no rate"):
        web.parse_wrk("unable to connect")
    assert per_ct_starts("CT 101 started (0.25 s)\nnoise\nCT 102 started (1.5 s)\n") == [0.25, 1.5]


def test_page_and_density_checkpoints() -> None:
    assert len(web.page("CT 101")) == web.PAGE_BYTES == 4300
    assert web.page("CT 101").endswith(b"</html>\n")
    assert density.checkpoints(25) == [1, 5, 10, 20, 25]
    assert density.checkpoints(160)[-3:] == [100, 150, 160]
    assert density.flatness([0.1] * 5) == {}


def test_command_line() -> None:
    args = parse(["--quick", "seed", "latency"])
    assert args.parts == ["seed", "latency"]
    conf = settings(args)
    assert conf["seed_cts"] == [50] and conf["density_limit"] == 60
    assert parse([]).parts == ["seed", "latency", "density", "resources"]
    assert settings(parse(["--cts", "5,10"]))["seed_cts"] == [5, 10]
    with pytest.raises(SystemExit):
        parse(["throughput"])


def test_a_resumed_run_keeps_what_was_measured_and_redoes_what_failed(
        results: dict[str, Any], tmp_path: Path) -> None:
    resume.save(results, tmp_path)
    conf = settings(parse(["--quick", "--cts", "20,40"]))
    saved = resume.previous(tmp_path, dict(results["settings"], **{
        k: conf[k] for k in ("seed_cts", "quick", "seed_rounds", "seed_seconds")}))
    machine = dict(results["machine"], date="2026-12-07 09:00 UTC", vzcore="0.1.0, commit abc")
    merged = resume.merge(saved, conf, ["seed", "resources"], machine)
    assert merged["settings"]["seed_cts"] == [10, 20, 40]
    assert resume.seed_done(merged, 20) and not resume.seed_done(merged, 40)
    assert resume.part_done(merged, "latency")
    assert not resume.part_done(merged, "resources")  # it failed: measured again
    assert merged["errors"] == {}
    assert [r["date"] for r in merged["runs"]] == ["2026-12-06 10:00 UTC", "2026-12-07 09:00 UTC"]
    assert not (tmp_path / "results.json.partial").exists()


def test_resume_refuses_results_measured_otherwise(results: dict[str, Any],
                                                   tmp_path: Path) -> None:
    with pytest.raises(resume.ResumeError, match="does not exist; run without --resume first"):
        resume.previous(tmp_path, results["settings"])
    resume.save(results, tmp_path)
    with pytest.raises(resume.ResumeError, match="init = 'sysvinit', this run asks for 'systemd'"):
        resume.previous(tmp_path, dict(results["settings"], init="systemd"))
    (tmp_path / "results.json").write_text("{")
    with pytest.raises(resume.ResumeError, match="cannot read"):
        resume.previous(tmp_path, results["settings"])


def test_a_report_of_several_runs_names_each(results: dict[str, Any], tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install matplotlib)")
    results["runs"] = [resume.run_entry(results["machine"]),
                       resume.run_entry(dict(results["machine"], date="2026-12-07 09:00 UTC"))]
    results["seed"][1]["rounds"] = "one after another"
    report.write(results, tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "in 2 runs from 2026-12-06 10:00 UTC to 2026-12-07 09:00 UTC" in text
    assert "  * 2026-12-07 09:00 UTC: vzcore 0.1.0; load at the start [3.5, 2.0, 1.0]" in text
    assert "At N = 20 the host servers and LXC containers would not fit in memory beside" in text
