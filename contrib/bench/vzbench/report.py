"""The report: ``report.md`` and PNG plots (matplotlib) from a run's results, and the
headline lines the command prints.  Works on whatever parts the results hold (a part that
failed or was not asked for is said so, not left out silently)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

TARGETS = {"ratio": 0.97, "memory_mib": 10.0, "start_vs_runc": 3.0, "flatness": 1.2}


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (int, float)) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _seed_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in results.get("seed") or [] if row.get("ratio") is not None]


def _largest(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return max(rows, key=lambda r: r["cts"]) if rows else None


def headlines(results: dict[str, Any]) -> list[str]:
    """One line per headline figure, e.g. ``throughput ratio CT/host: 0.98``."""
    lines = []
    for row in _seed_rows(results):
        n = row["cts"]
        mem = row.get("memory", {})
        lines += [
            f"web CTs: {n}",
            f"boot-all of {n} web CTs: {row['boot_all_s']:.1f} s (all serving after "
            f"{row['serving_after_s']:.1f} s)",
            f"throughput CTs ({n}): {row['ct_req_min']:,.0f} req/min",
            f"throughput host ({n} servers): {row['host_req_min']:,.0f} req/min",
            f"throughput ratio CT/host: {row['ratio']:.2f}",
            *([f"throughput LXC ({n}): {row['lxc_req_min']:,.0f} req/min",
               f"throughput ratio LXC/host: {row['lxc_ratio']:.2f}"] if row.get("lxc_req_min") else []),
            f"host memory per running CT (PSS + kernel): "
            f"{mem.get('estimate_mib_per_ct', float('nan')):.1f} MiB",
            f"MemAvailable drop per running CT: "
            f"{mem.get('memavailable_drop_mib_per_ct', float('nan')):.1f} MiB",
            f"memory charged per CT (memcg): {mem.get('memcg_usage_mib_per_ct', float('nan')):.1f} MiB",
            f"processes per CT: {mem.get('processes_per_ct', float('nan')):.1f}",
        ]
        if row.get("lxc_memory"):
            lxc = row["lxc_memory"]
            lines.append(f"LXC memory per container (PSS + its lxc-start monitor): "
                         f"{lxc['pss_mib_per_ct'] + lxc['monitor_pss_mib_per_ct']:.1f} MiB")
    latency = results.get("latency")
    if latency:
        med = latency["medians_ms"]
        for label in ("vzctl start", "vzctl exec", "vzctl stop", "vzctl stop --fast", "runc run", "crun run",
                      "systemd-nspawn", "lxc-execute", "unshare + chroot"):
            if label in med:
                lines.append(f"{label} median: {med[label]:.1f} ms")
        if "vzctl start" in med and "runc run" in med:
            lines.append(f"vzctl start / runc run: {med['vzctl start'] / med['runc run']:.2f}")
        cpu = latency.get("cpu_medians_ms") or {}
        if "vzctl start" in cpu:
            lines.append(f"vzctl start CPU time (user+sys) median: {cpu['vzctl start']:.1f} ms")
    dens = results.get("density")
    if dens:
        lines.append(f"density: {dens['largest_answering']} web CTs all answering within 1 s "
                     f"(stopped by {dens['stopped_by']})")
        if dens.get("flatness"):
            lines.append(f"start time last/first tenth of CTs: {dens['flatness']['ratio']:.2f}")
    res = results.get("resources") or {}
    if "cpuunits_ratio" in res.get("cpu", {}):
        lines.append(f"cpuunits 3000:1000 CPU time ratio: {res['cpu']['cpuunits_ratio']:.2f}")
        lines.append(f"cpulimit 25: {res['cpu']['cpulimit_percent']:.1f} % of a CPU")
    if "peak_mib" in res.get("memory", {}):
        lines.append(f"memory limit 64 MiB: peak {res['memory']['peak_mib']:.1f} MiB, "
                     f"160 MB allocation {'refused' if res['memory']['big_refused'] else 'NOT refused'}")
    if "written_mib" in res.get("disk", {}):
        lines.append(f"disk limit 64 MiB (image): {res['disk']['written_mib']:.1f} MiB written "
                     f"before {'ENOSPC' if res['disk']['enospc'] else 'the end (no ENOSPC)'}")
    for part, error in (results.get("errors") or {}).items():
        lines.append(f"{part}: FAILED: {error.splitlines()[0]}")
    return lines


# ---- plots ---------------------------------------------------------------------------

def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_seed(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """throughput.png (req/min against N, CTs and host) and memory.png (MiB per CT)."""
    plt = _pyplot()
    ns = [r["cts"] for r in rows]
    made = []
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(ns, [r["ct_req_min"] for r in rows], "o-", label="vzcore web CTs")
    ax.plot(ns, [r["host_req_min"] for r in rows], "s--", label="same servers on the host")
    if any(r.get("lxc_req_min") for r in rows):
        ax.plot(ns, [r.get("lxc_req_min", float("nan")) for r in rows], "^:",
                label="same web CTs as LXC containers")
    for r in rows:
        ax.annotate(f"{r['ratio']:.2f}x", (r["cts"], r["ct_req_min"]), textcoords="offset points",
                    xytext=(4, 6), fontsize=8)
    ax.set_xlabel("web servers (CTs or host processes)")
    ax.set_ylabel("requests per minute (wrk, all servers)")
    ax.set_title("Aggregate throughput, 4,300-byte page")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    made.append(out / "throughput.png")
    fig.savefig(made[-1], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.4, 4))
    series = [("estimate_mib_per_ct", "vzcore: PSS + kernel memory per CT", "memory"),
              ("memavailable_drop_mib_per_ct", "vzcore: MemAvailable drop per CT", "memory"),
              ("memcg_usage_mib_per_ct", "vzcore: charged to the CT's memcg", "memory"),
              ("pss_mib_per_server", "host: PSS per apache2 server", "host_memory"),
              ("memavailable_drop_mib_per_server", "host: MemAvailable drop per server",
               "host_memory")]
    for key, label, section in series:
        values = [r.get(section, {}).get(key) for r in rows]
        if any(v is not None for v in values):
            ax.plot(ns, [v if v is not None else float("nan") for v in values], "o-", label=label)
    lxc = [r.get("lxc_memory") for r in rows]
    if any(lxc):
        ax.plot(ns, [m["pss_mib_per_ct"] + m["monitor_pss_mib_per_ct"] if m else float("nan")
                     for m in lxc], "^:", label="LXC: PSS + monitor per container")
    ax.axhline(TARGETS["memory_mib"], color="red", linestyle=":", label="target: 10 MiB per CT")
    ax.set_xlabel("running web CTs")
    ax.set_ylabel("MiB per CT")
    ax.set_title("Host memory per running web CT")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    made.append(out / "memory.png")
    fig.savefig(made[-1], dpi=100)
    plt.close(fig)
    return made


def plot_latency(latency: dict[str, Any], out: Path) -> Path:
    """latency.png: every sample as a dot, the median as a bar, per runtime."""
    plt = _pyplot()
    samples = latency["samples_ms"]
    labels = sorted(samples, key=lambda k: latency["medians_ms"][k])
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(labels) + 1.5))
    for y, label in enumerate(labels):
        ax.barh(y, latency["medians_ms"][label], color="#9ecae1" if "vzctl" not in label else "#fdae6b")
        ax.plot(samples[label], [y] * len(samples[label]), "k.", markersize=3)
        ax.text(latency["medians_ms"][label], y, f" {latency['medians_ms'][label]:.1f}",
                va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xscale("log")
    ax.set_xlabel("ms (log scale), whole process; bar = median")
    ax.set_title("Start latency, same busybox tree (peers: /bin/true)")
    fig.tight_layout()
    path = out / "latency.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_density(dens: dict[str, Any], out: Path) -> Path:
    """density.png: the start time of the n-th CT."""
    plt = _pyplot()
    starts = [s * 1000 for s in dens["start_s"]]
    fig, ax = plt.subplots(figsize=(6.4, 4))
    ax.plot(range(1, len(starts) + 1), starts, ".", markersize=4, label="vzctl start of the n-th CT")
    ax.set_xlabel("n (web CTs already running + 1)")
    ax.set_ylabel("ms")
    ax.set_ylim(bottom=0)
    ax.set_title("Start time of the n-th web CT")
    ax.legend()
    fig.tight_layout()
    path = out / "density.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- Markdown -------------------------------------------------------------------------

def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_num(c) if not isinstance(c, str) else c for c in row) + " |"
              for row in rows]
    return [*lines, ""]


def _machine(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    lines = ["## Machine and versions", "",
             f"* date: {m['date']}; host `{m['host']}`",
             f"* {m['cpus']} CPUs ({m['cpu']}), {m['memory_gib']} GiB; Linux {m['kernel']}, "
             f"Debian {m['debian']}; cgroups {m['cgroups']}",
             f"* vzcore {m['vzcore']}; Python {m['python']}",
             f"* load average (1, 5, 15 min) at the start {m['load_start']}, at the end "
             f"{m.get('load_end', '-')}; the machine is shared with other users, so read "
             "ratios taken in the same run, not absolute figures"]
    for part, load in (results.get("load") or {}).items():
        lines.append(f"  * {part}: before {load['before']}, after {load['after']}")
    runs = results.get("runs") or []
    if len(runs) > 1:
        lines.append(f"* measured in {len(runs)} runs (`--resume` went on from the one before; "
                     "each seed size is measured whole within one run):")
        lines += [f"  * {r['date']}: vzcore {r['vzcore']}; load at the start {r['load_start']}, "
                  f"at the end {r.get('load_end') or '-'}" for r in runs]
    lines += ["", *_table(["tool", "version"], [[k, f"`{v}`"] for k, v in m["tools"].items()])]
    return lines


def _seed(results: dict[str, Any], plots: list[str]) -> list[str]:
    rows = _seed_rows(results)
    conf = results["settings"]
    lines = ["## Seed: web CTs against the same servers on the host", ""]
    if not rows:
        return [*lines, _missing(results, "seed"), ""]
    template = rows[0]["template"]
    made = (f"Each CT is made by `vzctl create --layout overlay` from the `{template}` template"
            if rows[0].get("layout") == "overlay"
            else f"Each CT is a copy of one made from the `{template}` template")
    sharing = ("The template's tree is unpacked once and shared by every CT as the lower layer "
               "of its overlay (binaries and libraries one page cache for all); each CT's "
               "changes (logs, spool, its page) go to an ext4 upper image of its own, "
               "one loop device each."
               if rows[0].get("layout") == "overlay" else
               "`/usr` is hard-linked between the copies (its page cache is shared, as on "
               "OpenVZ's template area or vzcore's overlay layout, `--layout overlay`); `/etc` "
               "and `/var` are each CT's own.")
    lines += [
        f"{made} (`vzctl template create debian-12 --flavour web --init {conf['init']}`): init, "
        "rsyslogd, cron, sshd, openbsd-inetd, exim4 and apache2 with mpm_prefork and 8 "
        "workers, each CT on its own venet address, serving its own 4,300-byte page.  "
        f"{sharing}  All are started by one `vzctl boot-all`.  The template is tuned as a "
        "provider would tune it (docs/templates.md): exim4 keeps no CA bundle in its daemon, "
        "apache2 loads only the modules a static site uses.",
        "",
        "The host baseline is the same apache2 (the template's binary, modules and "
        "configuration, via `chroot` into an unpacked copy: no namespace, no cgroup), N "
        "servers on N addresses on `lo`, with the same page.  `wrk` runs a thread per server "
        f"and two connections each, {conf['seed_seconds']} s per sample, host and CTs in "
        f"alternating rounds ({conf['seed_rounds']} each); medians.", ""]
    alone = [r for r in rows if r.get("rounds") == "one after another"]
    if alone:
        why = ("as `--alone` asked" if conf.get("seed_alone") else
               "the host servers and LXC containers would not fit in memory beside the "
               "running CTs")
        lines += [f"At N = {', '.join(str(r['cts']) for r in alone)} {why}, so each "
                  "population was loaded alone, its rounds one after another, and stopped "
                  "before the next started (the CTs first).", ""]
    lines += _table(
        ["N", "boot-all s", "all serving s", "CT req/min", "host req/min", "ratio CT/host",
         "target", "LXC req/min", "ratio LXC/host", "wrk errors CT / host / LXC"],
        [[r["cts"], r["boot_all_s"], r["serving_after_s"], r["ct_req_min"], r["host_req_min"],
          f"**{r['ratio']:.2f}**", f">= {TARGETS['ratio']}", r.get("lxc_req_min"),
          f"{r['lxc_ratio']:.2f}" if r.get("lxc_ratio") else "-",
          " / ".join(_num(sum(s["socket_errors"] + s["non_2xx"] for s in r["throughput"][k]), 0)
                     if k in r["throughput"] else "-" for k in ("ct", "host", "lxc"))]
         for r in rows])
    for r in rows:
        if r.get("lxc_error"):
            lines += [f"LXC at N = {r['cts']} could not run: `{r['lxc_error']}`", ""]
    lines += ["### Memory per running web CT", ""]
    mem_rows = []
    for r in rows:
        m, h = r["memory"], r.get("host_memory", {})
        mem_rows.append([r["cts"], f"**{_num(m.get('estimate_mib_per_ct'))}**",
                         m.get("memavailable_drop_mib_per_ct"),
                         m.get("memcg_usage_mib_per_ct"), m.get("memcg_anon_mib_per_ct"),
                         m.get("memcg_cache_mib_per_ct"), m.get("memcg_kmem_mib_per_ct"),
                         m.get("kernel_uncharged_mib_per_ct"), m.get("pss_mib_per_ct"),
                         m.get("processes_per_ct"), h.get("memavailable_drop_mib_per_server"),
                         h.get("pss_mib_per_server")])
    lines += _table(["N", "PSS + kernel", "MemAvailable drop", "memcg charge", "anon",
                     "page cache", "kernel (kmem)", "kernel not charged", "PSS of its processes", "processes",
                     "host server: MemAvailable drop", "host server: PSS"], mem_rows)
    largest = _largest(rows)
    assert largest is not None
    m = largest["memory"]
    lines += [f"All in MiB per CT (per server for the host columns), N = {largest['cts']} "
              f"the largest.  Target: at most {TARGETS['memory_mib']:.0f} MiB per CT.  "
              "*PSS + kernel*, the figure held against the target: the PSS of the CT's processes "
              "plus the kernel memory made for it, charged to its group or not (page cache that "
              "no process maps, logs written and files read once, is left out: it is "
              "reclaimable).  *MemAvailable drop*: /proc/meminfo before the boot and after every CT served "
              "(other users of the machine move it too).  *memcg charge*: what the kernel charged "
              "to the CTs' memory groups (anonymous + page cache + kernel memory).  *kernel not "
              "charged*: growth of slab, kernel stacks and page tables in /proc/meminfo beyond the "
              "kernel memory charged to the CTs (namespaces, cgroups in the other hierarchies, "
              "the venet pairs made from the host side).  *PSS*: each process's proportional "
              "set size, shared pages divided among their users.", ""]
    if m.get("programs"):
        lines += [f"Where a CT's memory goes, by program (N = {largest['cts']}, per CT):", ""]
        lines += _table(["program", "processes", "PSS MiB", "of it anonymous", "RSS MiB"],
                        [[name, p["processes"], p["pss_mib"], p["pss_anon_mib"], p["rss_mib"]]
                         for name, p in m["programs"].items()])
    lines += [f"Host side: {m.get('host_helpers', 0)} vzcore helper process(es) for all CTs "
              f"(PSS {_num(m.get('host_helpers_pss_mib'))} MiB in all).", ""]
    lxc_rows = [r for r in rows if r.get("lxc_memory")]
    if lxc_rows:
        lines += ["The same web CTs as LXC containers (`lxc-start` of a copy of the same tree, "
                  "`/usr` hard-linked the same way, sysvinit, a veth in router mode), per "
                  "container, MiB:", ""]
        lines += _table(["N", "PSS of its processes", "lxc-start monitor PSS (host side)",
                         "memcg charge", "MemAvailable drop", "processes", "all serving s"],
                        [[r["cts"], r["lxc_memory"]["pss_mib_per_ct"],
                          r["lxc_memory"]["monitor_pss_mib_per_ct"],
                          r["lxc_memory"]["memcg_usage_mib_per_ct"],
                          r["lxc_memory"]["memavailable_drop_mib_per_ct"],
                          r["lxc_memory"]["processes_per_ct"], r.get("lxc_serving_s")]
                         for r in lxc_rows])
    lines += _shrink(largest)
    lines += [f"![throughput]({p})" for p in plots if "throughput" in p]
    lines += [f"![memory]({p})" for p in plots if "memory" in p]
    return [*lines, ""]


def _shrink(row: dict[str, Any]) -> list[str]:
    """Against the target: what the measured figure is made of and what would shrink it."""
    m = row["memory"]
    estimate, programs = m.get("estimate_mib_per_ct"), m.get("programs") or {}
    if estimate is None or not programs:
        return []
    verdict = "meets" if estimate <= TARGETS["memory_mib"] else "misses"
    top = sorted(programs.items(), key=lambda kv: -kv[1]["pss_mib"])[:3]
    anon = sum(p["pss_anon_mib"] for p in programs.values())
    kernel = m.get("memcg_kmem_mib_per_ct", 0.0) + m.get("kernel_uncharged_mib_per_ct", 0.0)
    return [
        f"**Against the target**: {estimate:.1f} MiB per CT {verdict} the "
        f"{TARGETS['memory_mib']:.0f} MiB target.  Of it, {anon:.1f} MiB is the processes' "
        f"anonymous memory (their own heap and stacks, not shareable), "
        f"{m.get('pss_mib_per_ct', 0.0) - anon:.1f} MiB their share of mapped files and "
        f"{kernel:.1f} MiB kernel memory.  The largest programs: "
        + ", ".join(f"{name} {p['pss_mib']:.1f} MiB ({p['pss_anon_mib']:.1f} anonymous, "
                    f"{p['processes']:.0f} process{'es' if p['processes'] >= 1.5 else ''})"
                    for name, p in top) + ".", "",
        "What would shrink it: (1) the programs' anonymous memory is what each CT pays in "
        "full; fewer pre-forked apache2 workers than the announcement's eight, or sshd "
        "started by inetd on demand, cut it directly; (2) file pages are shared only where "
        "the CTs share one tree (`/usr` hard-linked between copies, or the overlay layout's "
        "shared template tree): CTs each with their own unpacked tree (`vzctl create` "
        "per CT with the simfs or image layout) map their own copies of every binary and "
        "library; (3) sysvinit as PID 1: a systemd CT adds "
        "journald, logind and dbus (a booted minimal systemd CT is about 27 MiB PSS, see "
        "docs/benchmarks.md), so `--init systemd` costs more per CT.", ""]


def _latency(results: dict[str, Any], plots: list[str]) -> list[str]:
    lines = ["## Start latency", ""]
    lat = results.get("latency")
    if not lat:
        return [*lines, _missing(results, "latency"), ""]
    med = lat["medians_ms"]
    lines += ["Whole processes timed from fork to exit, medians.  The peers run `/bin/true` in "
              "a copy of the busybox CT's tree (`runc spec` namespaces; crun in a private mount "
              "namespace without the cgroup2 mount, see the peer anchors' workarounds; "
              "`systemd-nspawn --register=no --keep-unit --private-network`; `lxc-execute` with "
              "`lxc.net.0.type = empty`).  `vzctl start` returns once the CT's init runs; "
              "`vzctl exec` runs /bin/true in the running CT; `vzctl stop` stops it.", ""]
    runc = med.get("runc run")
    cpu = lat.get("cpu_medians_ms") or {}
    lines += _table(["what", "median ms", "runs", "x runc run", "CPU ms (user+sys)"],
                    [[label, value, lat["runs"][label],
                      value / runc if runc else None, cpu.get(label)]
                     for label, value in sorted(med.items(), key=lambda kv: kv[1])])
    if cpu:
        lines += ["*CPU ms*: median user + system time of the command and of the children it "
                  "waited for (`wait4`), which load from other users barely moves; for `vzctl "
                  "start` that leaves out the CT's own processes (its holder is forked by the "
                  "console daemon), for the peers it includes `/bin/true`.", ""]
    first = lat.get("first_start_ms")
    if first:
        lines += [f"`vzctl start` runs while another CT runs (as on any host with CTs), so the "
                  f"shared lxcfs and beancounters view daemon are up; the first start on the "
                  f"host, which starts both, took {first['wall']:.0f} ms ({first['cpu']:.0f} ms "
                  "of CPU in vzctl itself; the daemons' own start-up comes on top).", ""]
    if "vzctl start" in med and runc:
        start = med["vzctl start"]
        nspawn = med.get("systemd-nspawn")
        within = start <= TARGETS["start_vs_runc"] * runc
        faster = nspawn is not None and start < nspawn
        lines += [f"Target: `vzctl start` within 3x `runc run` ({start:.0f} ms against "
                  f"{3 * runc:.0f} ms: {'met' if within else 'missed'}) and faster than "
                  f"`systemd-nspawn` ({'met' if faster else 'missed'}: {_num(nspawn)} ms).", ""]
        if "python -c pass" in med:
            lines += [f"The interpreter alone (`python -c pass`) took {med['python -c pass']:.0f} ms "
                      "in this run (9.5 ms on the quiet machine of the peer anchors, "
                      "/work/shared/reference/peer-anchors.md): vzctl is a Python program, so "
                      "CPU contention from other users slows it more than the C runtimes, "
                      "which spend most of a start waiting on the kernel.", ""]
        prof = lat.get("profile") or {}
        if prof:
            floor = med.get("python: import click, pluggy, attrs")
            hooks = sorted(((k, v) for k, v in prof.items() if k not in ("total", "imports")),
                           key=lambda kv: -kv[1])
            lines += ["Where a `vzctl start` goes (one start through `contrib/bench/hooktimes.py`, "
                      f"ms): the whole run {_num(prof.get('total'))}; the interpreter "
                      f"with click, pluggy and attrs alone takes {_num(floor)} (median above); "
                      f"all imports of a start (`-X importtime`, another start) "
                      f"{_num(prof.get('imports'))}; the plugins' hooks (their imports included): "
                      + ", ".join(f"{k} {v:.1f}" for k, v in hooks if k != "imports")
                      + ".  The rest is the start itself (forks, namespaces, cgroups in every "
                      "hierarchy, the CT's init) and waiting for the CPU on a loaded machine.", ""]
    seed = _largest(_seed_rows(results))
    if seed:
        lines += [f"Parallel start, for comparison: `vzctl boot-all` of {seed['cts']} web CTs "
                  f"took {seed['boot_all_s']:.1f} s, {1000 * seed['boot_all_s'] / seed['cts']:.0f} "
                  "ms of wall time per CT.", ""]
    for label, error in lat.get("failures", {}).items():
        lines.append(f"* {label} could not be measured: {error}")
    lines += [f"![latency]({p})" for p in plots if "latency" in p]
    return [*lines, ""]


def _density(results: dict[str, Any], plots: list[str]) -> list[str]:
    lines = ["## Density", ""]
    dens = results.get("density")
    if not dens:
        return [*lines, _missing(results, "density"), ""]
    lines += [f"Web CTs started one at a time (`vzctl start`, timed); at each checkpoint every "
              f"running CT must answer within 1 s.  Largest population with every CT answering: "
              f"**{dens['largest_answering']}**; growth stopped by {dens['stopped_by']}.", ""]
    lines += _table(["running", "not answering in 1 s", "MemAvailable MiB", "load (1 min)"],
                    [[p["running"], p["silent"], p["memavailable_mib"], p["load1"]]
                     for p in dens["probes"]])
    flat = dens.get("flatness")
    if flat:
        lines += [f"Start time: median {flat['first_tenth_median_s'] * 1000:.0f} ms for the first "
                  f"tenth of the CTs, {flat['last_tenth_median_s'] * 1000:.0f} ms for the last "
                  f"tenth: ratio {flat['ratio']:.2f} (target: flat within 20 % from 10 to 1,000).", ""]
    lines += [f"![density]({p})" for p in plots if "density" in p]
    return [*lines, ""]


def _resources(results: dict[str, Any]) -> list[str]:
    lines = ["## Resource controls, re-verified", ""]
    res = results.get("resources")
    if not res:
        return [*lines, _missing(results, "resources"), ""]
    rows = []
    cpu = res.get("cpu", {})
    if "cpuunits_ratio" in cpu:
        rows.append(["cpuunits 3000:1000, two busy CTs on CPU 0 (CPU time ratio)", "3.0",
                     cpu["cpuunits_ratio"], ", ".join(f"{v:.2f}" for v in cpu["cpuunits_ratios"])])
        rows.append(["cpulimit 25, one busy loop (% of a CPU)", "25",
                     cpu["cpulimit_percent"], ", ".join(f"{v:.1f}" for v in cpu["cpulimit_percents"])])
    mem = res.get("memory", {})
    if "big_refused" in mem:
        rows.append(["--ram 64M: peak usage MiB (memory.max_usage_in_bytes)", "<= 64",
                     mem.get("peak_mib"), f"limit_in_bytes {_num(mem.get('limit_in_bytes_mib'))} MiB"])
        rows.append(["--ram 64M: 16 MB in a shell variable", "works",
                     "works" if mem["small_ok"] else "FAILED", f"exit {mem['small_rc']}"])
        rows.append(["--ram 64M: 160 MB in a shell variable", "killed",
                     "killed" if mem["big_refused"] else "NOT refused",
                     f"exit {mem['big_rc']}, OOM kills {mem.get('oom_kills', '-')}"])
    disk = res.get("disk", {})
    if "written_mib" in disk:
        rows.append(["image layout --diskspace 64M: MiB written by dd of 200 MiB", "< 64, ENOSPC",
                     disk["written_mib"], "ENOSPC" if disk["enospc"] else "no ENOSPC"])
    lines += _table(["check", "expected", "measured", "details"], rows)
    for name in ("cpu", "memory", "disk"):
        if "error" in res.get(name, {}):
            lines.append(f"* {name}: FAILED: {res[name]['error']}")
    return [*lines, ""]


def _missing(results: dict[str, Any], part: str) -> str:
    error = (results.get("errors") or {}).get(part)
    if error:
        return f"This part failed in this run: `{error.splitlines()[0]}`."
    return "Not run this time (not among the parts asked for)."


def _when(results: dict[str, Any]) -> str:
    runs = results.get("runs") or []
    if len(runs) > 1:
        return f"in {len(runs)} runs from {runs[0]['date']} to {runs[-1]['date']}"
    return f"on {results['machine']['date']}"


def write(results: dict[str, Any], out: Path) -> list[Path]:
    """Write ``report.md`` and the plots for ``results`` into ``out``; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    made: list[Path] = []
    rows = _seed_rows(results)
    if rows:
        made += plot_seed(rows, out)
    if results.get("latency"):
        made.append(plot_latency(results["latency"], out))
    if results.get("density") and results["density"]["start_s"]:
        made.append(plot_density(results["density"], out))
    names = [p.name for p in made]
    conf = results["settings"]
    how = "contrib/bench/run" + (" --quick" if conf["quick"] else "")
    lines = ["# vzcore benchmark report", "",
             f"Written by `{how}` (parts: {', '.join(results['parts'])}; seed N = "
             f"{', '.join(map(str, conf['seed_cts']))}) {_when(results)}; "
             "not edited by hand.  Raw figures: [results.json](results.json).  How to run it: "
             "[docs/benchmarks.md](../benchmarks.md).", "",
             "## Headline figures", "", "```", *headlines(results), "```", "",
             *_machine(results), *_seed(results, names), *_latency(results, names),
             *_density(results, names), *_resources(results)]
    if results.get("errors"):
        lines += ["## Failures in this run", ""]
        lines += [f"* {part}: `{error}`" for part, error in results["errors"].items()]
        lines.append("")
    (out / "report.md").write_text("\n".join(lines))
    return [out / "report.md", *made]
