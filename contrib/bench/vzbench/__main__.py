"""``contrib/bench/run [--quick] [--cts N[,N...]] [seed|latency|density|resources]...``

The suite of issue 18 (docs/benchmarks.md).  As root, it installs what it needs, builds
the ``web`` template (once; ``--reuse`` after), then re-runs itself in a throwaway network
namespace and runs the parts asked for (all by default).  Results go to
``docs/benchmarks/`` (``--out``): ``results.json``, ``report.md`` and PNG plots, written by
this command; the headline figures are printed one per line.  Everything it made (CTs,
cgroups, mounts, host servers, the namespace) is removed at the end, also on failure or
Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from vzbench import prereq
from vzbench.common import (
    REPO,
    cleaned_up,
    loadavg,
    log,
    remove_new_runtime_groups,
    runtime_groups,
)

PARTS = ("seed", "latency", "density", "resources")
IN_NETNS = "VZBENCH_NETNS"


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """How large each part is: ``--quick`` fits the whole run in 10 minutes on 2 CPUs."""
    quick = args.quick
    counts = ([int(c) for c in args.cts.split(",")] if args.cts
              else [50] if quick else [100, 500, 1000, 2400])
    return {
        "quick": quick, "init": args.init, "seed_cts": counts, "layout": args.layout,
        "seed_rounds": 2 if quick else 7, "seed_seconds": 8 if quick else 10,
        "seed_alone": args.alone,
        "latency_rounds": 3 if quick else 10,
        "density_limit": args.density_limit or (60 if quick else 2400),
        "density_budget_s": 120 if quick else 3600,
        "resources_window_s": 2.0 if quick else 10.0, "resources_repeat": 2 if quick else 3,
    }


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="contrib/bench/run", description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", metavar="PART",
                        help=f"any of {', '.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="a run of under 10 minutes")
    parser.add_argument("--cts", metavar="N[,N...]",
                        help="web CTs in the seed part (default 100,500,1000,2400; --quick 50)")
    parser.add_argument("--density-limit", type=int, metavar="N",
                        help="most CTs the density part starts (default 2,400; --quick 60)")
    parser.add_argument("--init", choices=("sysvinit", "systemd"), default="sysvinit",
                        help="PID 1 of the web template (default sysvinit, as the "
                             "announcement's CentOS had)")
    parser.add_argument("--layout", choices=("copy", "overlay"), default="copy",
                        help="the web CTs' disk layout: copies of one CT with /usr hard-linked "
                             "(default), or each made by 'vzctl create --layout overlay'")
    parser.add_argument("--out", type=Path, default=REPO / "docs/benchmarks",
                        help="where report.md, results.json and the plots go")
    parser.add_argument("--editable", action="store_true",
                        help="time the vzctl of the development venv (.venv, an editable "
                             "install) instead of a non-editable install of the checkout")
    parser.add_argument("--alone", action="store_true",
                        help="in the seed, load the CTs, the host servers and the LXC containers "
                             "one population at a time even where they fit in memory together")
    parser.add_argument("--resume", action="store_true",
                        help="go on from --out's results.json (an interrupted or partial run): "
                             "keep what it measured, measure what it lacks or failed at")
    parser.add_argument("--render", action="store_true",
                        help="only write report.md and the plots again from --out's "
                             "results.json (after a change to the report's code)")
    args = parser.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part {unknown[0]!r}: choose from {', '.join(PARTS)}")
    args.parts = list(dict.fromkeys(args.parts)) or list(PARTS)
    return args


def enter_netns() -> None:
    """Re-run this command in a new network namespace (lo up; a veth pair whose host end
    has 10.200.255.1/24 gives the host side a source address for the CTs' venet routes)."""
    os.environ[IN_NETNS] = "1"
    script = ("ip link set lo up && ip link add vzb-up0 type veth peer name vzb-up1"
              " && ip addr add 10.200.255.1/24 dev vzb-up0 && ip link set vzb-up0 up"
              ' && ip link set vzb-up1 up && exec "$0" "$@"')
    os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c", script, sys.executable,
                          "-m", "vzbench", *sys.argv[1:]])


def measure_seed(results: dict[str, Any], conf: dict[str, Any], tarball: Path, cleanup: Any,
                 out: Path) -> None:
    """The seed at every size not measured yet, in the order asked for; ``results.json`` is saved
    after each, so an interrupted run keeps the sizes it finished."""
    from vzbench import resume, seed

    rows = results.setdefault("seed", [])
    for count in conf["seed_cts"]:
        if resume.seed_done(results, count):
            log(f"seed at {count} CTs: measured already")
            continue
        rows.append(seed.measure(count, tarball, conf["seed_rounds"], conf["seed_seconds"],
                                 cleanup, layout=conf["layout"], alone=conf["seed_alone"]))
        rows.sort(key=lambda row: row["cts"])
        resume.save(results, out)


def main(argv: list[str]) -> int:
    args = parse(argv)
    if args.render:  # no root needed: nothing is measured
        from vzbench import report

        saved = json.loads((args.out / "results.json").read_text())
        report.write(saved, args.out)
        print("\n".join(report.headlines(saved)))
        return 0
    if os.geteuid() != 0:
        print("contrib/bench/run: run as root (it starts CTs and makes a network namespace)",
              file=sys.stderr)
        return 2
    conf = settings(args)
    conf["install"] = "editable (.venv)" if args.editable else "non-editable"
    if not os.environ.get(IN_NETNS):
        if not args.editable:
            python = prereq.release_venv()
            if not prereq.running_from(python):  # the same suite, from the installed vzctl
                os.execv(python, [str(python), "-m", "vzbench", *argv])
        prereq.install_packages()
        prereq.install_matplotlib()
        if {"seed", "density"} & set(args.parts):
            prereq.build_template(args.init)
        enter_netns()
    from vzbench import density, latency, machine, report, resources, resume

    results: dict[str, Any] = {"settings": conf, "parts": args.parts, "machine": machine.describe(),
                               "errors": {}}
    if args.resume:
        try:
            results = resume.merge(resume.previous(args.out, conf), conf, args.parts,
                                   results["machine"])
        except resume.ResumeError as exc:
            print(f"contrib/bench/run: {exc}", file=sys.stderr)
            return 2
    args.out.mkdir(parents=True, exist_ok=True)
    tarball = prereq.CACHE / "vz/template/cache" / f"{prereq.template_name(args.init)}.tar.zst"
    interrupted = False
    most = max([*conf["seed_cts"], conf["density_limit"] if "density" in args.parts else 0])
    with prereq.enough_pids(most), cleaned_up() as cleanup:
        try:
            for part in args.parts:
                if part != "seed" and resume.part_done(results, part):
                    log(f"part {part}: measured already ({args.out / 'results.json'})")
                    continue
                log(f"part {part} (load average {loadavg()})")
                load_before = loadavg()
                groups_before = runtime_groups()
                cleanup.push("remove the other runtimes' groups",
                             lambda before=groups_before: remove_new_runtime_groups(before))
                try:
                    if part == "seed":
                        measure_seed(results, conf, tarball, cleanup, args.out)
                    elif part == "latency":
                        results["latency"] = latency.measure(conf["latency_rounds"], cleanup)
                    elif part == "density":
                        results["density"] = density.measure(conf["density_limit"],
                                                             conf["density_budget_s"], tarball,
                                                             conf["layout"])
                    elif part == "resources":
                        results["resources"] = resources.measure(conf["resources_window_s"],
                                                                 conf["resources_repeat"])
                except Exception as exc:  # one part's failure keeps the others' results
                    results["errors"][part] = f"{type(exc).__name__}: {exc}"[:800]
                    log(f"part {part} failed: {exc}")
                    traceback.print_exc()
                results.setdefault("load", {})[part] = {"before": load_before, "after": loadavg()}
                cleanup.close()  # each part leaves nothing for the next
                resume.save(results, args.out)
        except KeyboardInterrupt:
            interrupted = True
            results["errors"]["interrupted"] = "interrupted (Ctrl-C or a signal); partial results"
    results["machine"]["load_end"] = loadavg()
    if results.get("runs"):
        results["runs"][-1]["load_end"] = results["machine"]["load_end"]
    resume.save(results, args.out)
    report.write(results, args.out)
    for line in report.headlines(results):
        print(line, flush=True)
    log(f"report: {args.out / 'report.md'}")
    return 130 if interrupted else (1 if results["errors"] else 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
