"""``vzcore-oci``: the OCI runtime command line, as runc's (what podman/conmon, containerd's
go-runc and CRI-O call).

Global options come before the command: ``--root DIR`` (default /run/vzcore-oci),
``--log FILE``, ``--log-format text|json``, ``--debug``, ``--systemd-cgroup`` (refused:
vzcore places a container's groups itself), ``--cgroup-manager cgroupfs|disabled`` (both
mean vzcore's own groups below its cgroup; see docs/oci-runtime.md).  Errors go to stderr
and, with ``--log``, to the log file as one line each (``{"level": "error", "msg": ...,
"time": ...}`` with ``--log-format json``), which is what conmon and containerd read.
Every failure exits with status 1, as runc's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from vzcore.errors import VzError, describe

VERSION = "0.1"
SPEC_VERSION = "1.0.2"


class Log:
    """Where errors and (with ``--debug``) debug lines go, in runc's formats."""

    def __init__(self, path: str | None, fmt: str, debug: bool) -> None:
        self.path = path
        self.fmt = fmt
        self.debug_on = debug

    def write(self, level: str, message: str) -> None:
        if self.path is None:
            return
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        if self.fmt == "json":
            line = json.dumps({"level": level, "msg": message, "time": now})
        else:
            line = f'time="{now}" level={level} msg={json.dumps(message)}'
        try:
            with open(self.path, "a") as f:
                f.write(line + "\n")
        except OSError:
            pass

    def error(self, message: str) -> None:
        print(f"vzcore-oci: {message}", file=sys.stderr, flush=True)
        self.write("error", message)

    def warn(self, message: str) -> None:
        self.write("warning", message)
        if self.debug_on:
            print(message, file=sys.stderr, flush=True)

    def debug(self, message: str) -> None:
        if self.debug_on:
            self.write("debug", message)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vzcore-oci", description="vzcore as an OCI runtime")
    parser.add_argument("--version", "-v", action="store_true", help="print the version")
    parser.add_argument("--root", default="/run/vzcore-oci", help="state directory")
    parser.add_argument("--log", help="log file (errors, and debug lines with --debug)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--debug", action="store_true")
    parser.add_argument("--systemd-cgroup", action="store_true")
    parser.add_argument("--cgroup-manager", choices=("cgroupfs", "disabled", "systemd"),
                        default="cgroupfs")
    parser.add_argument("--rootless", default=None, help="accepted for runc's CLI: 'false' only")
    sub = parser.add_subparsers(dest="command")

    p = sub.add_parser("create", help="create a container (its process waits for start)")
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument("--pid-file")
    p.add_argument("--console-socket")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--no-pivot", action="store_true")
    p.add_argument("--no-new-keyring", action="store_true")
    p.add_argument("id")

    p = sub.add_parser("run", help="create and start a container, wait for it")
    p.add_argument("--bundle", "-b", default=".")
    p.add_argument("--pid-file")
    p.add_argument("--console-socket")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("id")

    for name in ("start", "pause", "resume"):
        sub.add_parser(name).add_argument("id")
    p = sub.add_parser("state", help="the runtime-spec state as JSON")
    p.add_argument("id")
    p = sub.add_parser("kill")
    p.add_argument("--all", "-a", action="store_true")
    p.add_argument("id")
    p.add_argument("signal", nargs="?")
    p = sub.add_parser("delete")
    p.add_argument("--force", "-f", action="store_true")
    p.add_argument("id")
    p = sub.add_parser("exec", help="run a process in a running container")
    p.add_argument("--process", "-p")
    p.add_argument("--pid-file")
    p.add_argument("--detach", "-d", action="store_true")
    p.add_argument("--tty", "-t", action="store_true")
    p.add_argument("--console-socket")
    p.add_argument("--cwd")
    p.add_argument("--env", "-e", action="append", default=[])
    p.add_argument("--user", "-u")
    p.add_argument("--preserve-fds", type=int, default=0)
    p.add_argument("--no-new-privs", action="store_true")
    p.add_argument("id")
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("list")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("--quiet", "-q", action="store_true")
    p = sub.add_parser("ps")
    p.add_argument("--format", "-f", choices=("table", "json"), default="table")
    p.add_argument("id")
    p.add_argument("ps_args", nargs=argparse.REMAINDER)
    p = sub.add_parser("update")
    p.add_argument("--resources", "-r", help="OCI resources JSON, '-' for stdin")
    p.add_argument("id")
    sub.add_parser("features", help="what this runtime supports, as JSON")
    p = sub.add_parser("ubc", help="vzctl ubc for containers: their beancounters")
    p.add_argument("-j", "--json", action="store_true")
    p.add_argument("ids", nargs="*")
    p = sub.add_parser("ctid", help="the vzcore CT ID and VZ_ROOT of a container")
    p.add_argument("id")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    log = Log(args.log, args.log_format, args.debug)
    if args.version:
        print(f"vzcore-oci version {VERSION}\nspec: {SPEC_VERSION}")
        return 0
    if args.command is None:
        log.error("no command given; see 'vzcore-oci --help'")
        return 1
    log.debug(f"vzcore-oci {' '.join(sys.argv[1:] if argv is None else argv)}")
    try:
        if args.systemd_cgroup or args.cgroup_manager == "systemd":
            raise VzError("--systemd-cgroup: the systemd cgroup manager is not supported: "
                          "vzcore places each container's groups below its own cgroup; use "
                          "--cgroup-manager cgroupfs or disabled (podman: cgroup_manager = "
                          "\"cgroupfs\")")
        if args.rootless not in (None, "false", "auto"):
            raise VzError("--rootless: vzcore-oci runs as root only")
        return _dispatch(args, log)
    except VzError as exc:
        log.error(exc.message if hasattr(exc, "message") else str(exc))
        return 1
    except OSError as exc:
        log.error(describe(exc))
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace, log: Log) -> int:
    from vzcore.oci.runtime import Runtime, parse_signal

    runtime = Runtime(args.root, warn=log.warn)
    command = args.command
    if command == "features":
        print(json.dumps(features(), indent=2))
        return 0
    if command == "list":
        return _list(runtime, args)
    if command in ("ubc", "ctid"):
        return _vzctl(runtime, args)
    if command == "create":
        runtime.create(args.id, args.bundle, pid_file=args.pid_file,
                       console_socket=args.console_socket, preserve_fds=args.preserve_fds)
    elif command == "run":
        return _run(runtime, args)
    elif command == "start":
        runtime.start(args.id)
    elif command == "state":
        print(json.dumps(runtime.state(args.id), indent=2))
    elif command == "kill":
        runtime.kill(args.id, parse_signal(args.signal), all_processes=args.all)
    elif command == "delete":
        runtime.delete(args.id, force=args.force)
    elif command == "pause":
        runtime.pause(args.id)
    elif command == "resume":
        runtime.resume(args.id)
    elif command == "ps":
        pids = runtime.ps(args.id)
        print(json.dumps(pids) if args.format == "json" else "PID\n" + "".join(f"{p}\n" for p in pids),
              end="" if args.format == "table" else "\n")
    elif command == "update":
        runtime.update(args.id, _resources(args.resources))
    elif command == "exec":
        return runtime.exec(args.id, _process(args), detach=args.detach, pid_file=args.pid_file,
                            console_socket=args.console_socket, preserve_fds=args.preserve_fds)
    return 0


def _list(runtime: Any, args: argparse.Namespace) -> int:
    states = runtime.states()
    if args.quiet:
        for state in states:
            print(state["id"])
    elif args.format == "json":
        print(json.dumps(states))
    else:
        print(f"{'ID':<20} {'PID':<8} {'STATUS':<10} {'BUNDLE':<40} {'CREATED':<30} OWNER")
        for s in states:
            print(f"{s['id']:<20} {s['pid']:<8} {s['status']:<10} {s['bundle']:<40} "
                  f"{s['created']:<30} {s['owner']}")
    return 0


def _vzctl(runtime: Any, args: argparse.Namespace) -> int:
    """``ctid ID`` prints ``CTID VZ_ROOT``; ``ubc [-j] [ID...]`` is vzctl's beancounter
    report (``vzctl ubc``) of the containers' CTs, in vzcore-oci's installation."""
    from pathlib import Path

    if args.command == "ctid":
        record = runtime.store.load(args.id)
        print(record.ctid, runtime.store.paths.prefix)
        return 0
    ctids = [str(runtime.store.load(cid).ctid) for cid in args.ids]
    runtime.store.prepare()
    vzctl = str(Path(sys.executable).with_name("vzctl"))
    env = {**os.environ, "VZ_ROOT": str(runtime.store.paths.prefix)}
    sys.stdout.flush()
    os.execve(vzctl, [vzctl, "ubc", *(["-j"] if args.json else []), *ctids], env)


def _run(runtime: Any, args: argparse.Namespace) -> int:
    """``run``: create, start and (unless ``--detach``) wait for the process, then delete."""
    from vzcore.linux.procfs import ProcessId, wait_exit

    runtime.create(args.id, args.bundle, pid_file=args.pid_file,
                   console_socket=args.console_socket, preserve_fds=args.preserve_fds)
    pid = runtime.state(args.id)["pid"]
    runtime.start(args.id)
    if args.detach:
        return 0
    process = ProcessId.of(pid)
    while process is not None and not wait_exit(process, 3600):
        pass
    runtime.delete(args.id, force=True)
    return 0


def _resources(source: str | None) -> dict[str, Any]:
    if source is None or source == "-":
        text = sys.stdin.read()
    else:
        with open(source) as f:
            text = f.read()
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise VzError(f"update --resources: not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise VzError("update --resources: give a JSON object (OCI's linux.resources)")
    return value


def _process(args: argparse.Namespace) -> dict[str, Any]:
    """OCI's process from ``--process FILE`` or from the command line (runc's flags)."""
    if args.process:
        try:
            with open(args.process) as f:
                process: dict[str, Any] = json.load(f)
        except (OSError, ValueError) as exc:
            raise VzError(f"exec --process {args.process}: {describe(exc)}") from None
        return process
    command = list(args.argv)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise VzError("exec: give a command or --process FILE")
    user: dict[str, Any] = {"uid": 0, "gid": 0}
    if args.user:
        uid, _, gid = args.user.partition(":")
        user = {"uid": int(uid), "gid": int(gid or 0)}
    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *args.env]
    return {"args": command, "env": env, "cwd": args.cwd or "/", "user": user,
            "terminal": bool(args.tty), "noNewPrivileges": bool(args.no_new_privs),
            "capabilities": _default_caps()}


def _default_caps() -> dict[str, list[str]]:
    names = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
             "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
             "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]
    return {"bounding": names, "effective": names, "permitted": names}


def features() -> dict[str, Any]:
    """The runtime-spec ``features`` document (what ``runc features`` prints)."""
    from vzcore.linux.caps import NAMES
    from vzcore.oci import seccomp
    from vzcore.oci.child import MS, PROPAGATION

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
                  "poststop"],
        "mountOptions": sorted({*MS, *PROPAGATION}),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [f"CAP_{name.upper()}" for name in NAMES],
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                       "rdma": False},
            "seccomp": {"enabled": True, "actions": list(seccomp.ACTIONS),
                        "operators": list(seccomp.OPS),
                        "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64"]},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
        },
        "annotations": {"org.openvz.*": "any vzcore parameter, as vzctl set --NAME VALUE"},
    }


if __name__ == "__main__":
    sys.exit(main())
