"""Joining a running CT: ``vzctl exec/exec2/exec3/enter`` and :func:`run_in_ct` for plugins.

The joining process gets exactly what the CT's init got.  vzctl forks a *joiner* that
leaves vzctl's session (so nothing in the CT has the admin's terminal as its controlling
terminal) and takes pipes or /dev/null as stdio (never a descriptor of the host's
terminal), makes itself non-dumpable (no CT process can inspect it or reach the host
binary through ``/proc/PID/exe``; set again after every credential change), enters the
CT's cgroups, then its namespaces (user first, mount last; joining the mount namespace
also puts ``/`` and the working directory at the CT's root), and forks the process that
will exec, so that it is inside the CT's PID namespace.  That process runs every
plugin's ``vz_enter`` (capabilities, seccomp), gets its stdio (the pipes that vzctl
copies to and from its own, or a pseudo-terminal from the CT's own devpts for ``enter``
and ``exec -t``), closes every other descriptor, and execs.
"""

from __future__ import annotations

import errno
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import NoReturn

from vzcore.container import Container
from vzcore.ctgroups import refuse_frozen
from vzcore.engine import Engine
from vzcore.errors import CommandFailed, NotRunning, VzError, describe
from vzcore.faults import checkpoint
from vzcore.lifecycle import terminal
from vzcore.lifecycle.execenv import detach, prepare_exec
from vzcore.lifecycle.forklimit import ForkLimit
from vzcore.lifecycle.terminal import read_pending
from vzcore.linux import dumpable, execstrings, namespaces
from vzcore.runtime import Run

EXEC_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "container": "vzcore",
}
SHELLS = ("/bin/bash", "/bin/sh")


def running(engine: Engine, ct: Container) -> Run:
    """The running CT's state, or :class:`NotRunning` (31)."""
    ct.require_exists()
    state = engine.state(ct)
    if state is None or not state.is_running:
        raise NotRunning(f"CT {ct.ctid} is not running; start it with 'vzctl start {ct.ctid}'")
    if state.cgroups is not None:
        refuse_frozen(ct, state.cgroups)  # a joining process would stop there for good
    return Run(ct, state, engine.plugins)


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _join(run: Run, stdio: Sequence[int], payload: Callable[[], NoReturn],
          report: int | None = None) -> NoReturn:
    """In the forked joiner: leave vzctl's session, take ``stdio`` (vzctl's pipes or
    /dev/null, never its terminal) as 0, 1 and 2, enter the CT, fork, run ``payload``
    inside; exit with its status.  With ``report`` (a pipe), write the command's host PID
    there and exit at once instead (:func:`spawn_in_ct`)."""
    ct = run.ct
    try:
        # No controlling terminal and no descriptor of the host's one may reach the CT:
        # TIOCSTI on either would type into the admin's shell (CVE-2016-9962's sibling,
        # LXC's CVE-2017-5226).  A new session first, then stdio replaced, then setns.
        detach(stdio)
        execstrings.wipe()  # the admin's environment, readable by a privileged CT's root
        for sig in FORWARDED:  # meant for the command (see _relay_signals)
            signal.signal(sig, signal.SIG_IGN)
        dumpable.forbid()
        init = run.init_pid
        run.cgroups.attach(os.getpid(), beside=init)
        opened = namespaces.open_namespaces(init, namespaces.differing(init))
        root = os.open(f"/proc/{init}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        limit = ForkLimit.read(ct.ctid, run.cgroups)  # the host's cgroupfs is out of sight inside
        run.plugins.import_child_modules()  # and so are the host's files: vz_enter's modules
        namespaces.enter(opened)
        namespaces.take_root(root)  # init's, when chroot rooted it (a shared mount namespace)
        dumpable.forbid()  # a credential change may have reset it (fs.suid_dumpable)
        try:
            child = os.fork()
        except BlockingIOError:
            raise limit.error("the command") from None
        if child == 0:
            try:
                # A session (and process group) of its own inside the CT: what it starts
                # in the background belongs to the CT alone, not to a group led by this
                # host process, and outlives the joiner as the CT init's child.
                os.setsid()
                os.chdir("/")
                run.plugins.run_each("vz_enter", ct=ct, run=run)
                dumpable.forbid()  # vz_enter changed uid and capabilities
                checkpoint("enter:joined")
                payload()
            except BaseException as exc:
                print(f"vzctl: CT {ct.ctid}: {describe(exc)}", file=sys.stderr)
                os._exit(126)
        if report is not None:
            os.write(report, str(child).encode())
            os._exit(0)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))  # hold no pipe end open for the child
        _relay_signals(child)
        _pid, status = os.waitpid(child, 0)
        os._exit(_exit_status(status))
    except VzError as exc:  # its message names the CT
        print(f"vzctl: {exc.message}", file=sys.stderr)
        os._exit(126)
    except BaseException as exc:
        print(f"vzctl: cannot enter CT {ct.ctid}: {describe(exc)}", file=sys.stderr)
        os._exit(126)


FORWARDED = (signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP)
"""Signals vzctl passes on to the command: in a session of its own, the command no longer
gets the terminal's ^C or hang-up from the kernel."""


def _relay_signals(child: int) -> None:
    """In the joiner: pass :data:`FORWARDED` signals (from vzctl) on to the process group
    of ``child``, the command and what it started, as a terminal would."""
    def relay(sig: int, _frame: object) -> None:
        try:
            os.killpg(child, sig)
        except ProcessLookupError:  # not yet a group leader (before its setsid)
            try:
                os.kill(child, sig)
            except ProcessLookupError:
                pass

    for sig in FORWARDED:
        signal.signal(sig, relay)


def _forward_signals(joiner: int) -> dict[int, object]:
    """Pass :data:`FORWARDED` signals on to ``joiner``, which relays them to the command's
    process group inside the CT (:func:`_relay_signals`); the old handlers."""
    def forward(sig: int, _frame: object) -> None:
        try:
            os.kill(joiner, sig)
        except ProcessLookupError:
            pass

    return {sig: signal.signal(sig, forward) for sig in FORWARDED}


def _exec(argv: Sequence[str], env: dict[str, str]) -> NoReturn:
    prepare_exec()
    try:
        os.execvpe(argv[0], list(argv), env)
    except OSError as exc:
        print(f"{argv[0]}: {exc.strerror}", file=sys.stderr)
        os._exit(127 if exc.errno == errno.ENOENT else 126)


def _fork_joiner(run: Run, stdio: Sequence[int], payload: Callable[[], NoReturn]) -> int:
    """Fork a joiner (see :func:`_join`); return its PID.  ``stdio`` are vzctl's ends for
    the joiner, closed here in vzctl once the joiner holds them."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        _join(run, stdio, payload)
    for fd in set(stdio):
        os.close(fd)
    return pid


def spawn_in_ct(run: Run, stdio: Sequence[int], payload: Callable[[], NoReturn]) -> int:
    """Start ``payload`` in the running CT of ``run`` (as :func:`run_in_ct` joins it, with
    ``stdio``, closed here) and return its host PID without waiting: the joiner exits at
    once, so the process is then reaped by the nearest subreaper above the caller (an OCI
    engine's conmon or shim), as runc's ``exec --detach`` leaves it."""
    report_r, report_w = os.pipe2(os.O_CLOEXEC)
    sys.stdout.flush()
    sys.stderr.flush()
    joiner = os.fork()
    if joiner == 0:
        os.close(report_r)
        _join(run, stdio, payload, report_w)
    os.close(report_w)
    for fd in set(stdio):
        os.close(fd)
    try:
        data = b""
        while chunk := os.read(report_r, 32):
            data += chunk
    finally:
        os.close(report_r)
    _pid, status = os.waitpid(joiner, 0)
    if not data:
        raise CommandFailed(f"CT {run.ct.ctid}: the process could not join the CT "
                            f"(status {_exit_status(status)})")
    return int(data)


def _joiner_errors() -> tuple[int, int]:
    """A pipe for the joiner's own error messages, which vzctl relays (:func:`_relay`)."""
    return os.pipe2(os.O_CLOEXEC)


def _relay(errors: int) -> None:
    """Copy what the joiner reported to vzctl's stderr, once it has exited."""
    try:
        while data := _read(errors):
            _write_all(sys.stderr.fileno(), data)
    finally:
        os.close(errors)


def run_in_ct(run: Run, argv: Sequence[str]) -> int:
    """Run ``argv`` inside the running CT of ``run`` with /dev/null as stdio and no
    terminal; return its exit status (127 when the command does not exist there)."""
    def payload() -> NoReturn:
        null = os.open("/dev/null", os.O_RDWR)  # the CT's own
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        _exec(argv, EXEC_ENV)

    errors_r, errors_w = _joiner_errors()
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    pid = _fork_joiner(run, (null, null, errors_w), payload)
    _pid, status = os.waitpid(pid, 0)
    _relay(errors_r)
    return _exit_status(status)


def output_in_ct(run: Run, argv: Sequence[str], limit: int = 1 << 16,
                 timeout: float = 10.0) -> tuple[int, str]:
    """Run ``argv`` inside the running CT of ``run`` as :func:`run_in_ct` does, with its
    stdout on a pipe; return its exit status and (up to ``limit`` bytes of) its output.
    After ``timeout`` seconds the command is killed (status 137) with what it wrote."""
    def payload() -> NoReturn:
        null = os.open("/dev/null", os.O_RDWR)  # the CT's own
        for fd in (0, 2):
            os.dup2(null, fd)
        _exec(argv, EXEC_ENV)

    errors_r, errors_w = _joiner_errors()
    out_r, out_w = os.pipe2(os.O_CLOEXEC)
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    pid = _fork_joiner(run, (null, out_w, errors_w), payload)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0 and select.select([out_r], [], [], left)[0]:
            data = _read(out_r)
            if not data:
                break
            if sum(map(len, chunks)) < limit:
                chunks.append(data)
        else:
            try:
                os.killpg(pid, signal.SIGKILL)  # the joiner's session: it and the command
            except ProcessLookupError:
                pass
    finally:
        os.close(out_r)
    _pid, status = os.waitpid(pid, 0)
    _relay(errors_r)
    return _exit_status(status), b"".join(chunks)[:limit].decode(errors="replace")


def _argv(args: Sequence[str], mode: str) -> list[str]:
    if mode == "exec3":
        return list(args)
    if list(args) == ["-"]:
        return ["/bin/sh"]
    return ["/bin/sh", "-c", " ".join(args)]


def exec_command(engine: Engine, ct: Container, args: Sequence[str], *, mode: str,
                 tty: bool = False) -> int:
    """``vzctl exec`` (``mode="exec"``: the joined words through ``/bin/sh -c``, exit 8 when
    the command fails; ``-`` alone reads the commands from stdin), ``exec2`` (the same,
    the command's own status) and ``exec3`` (argv as given, no shell).  The command gets
    pipes as stdio, or with ``tty`` a pseudo-terminal of the CT's own devpts; never the
    host's terminal or session.  Returns vzctl's exit code."""
    run = running(engine, ct)
    argv = _argv(args, mode)
    if tty:
        env = _terminal_env()
        code = _run_on_pty(run, lambda: _exec(argv, env))
    else:
        stdio = [os.pipe2(os.O_CLOEXEC) for _ in range(3)]
        pid = _fork_joiner(run, (stdio[0][0], stdio[1][1], stdio[2][1]), lambda: _exec(argv, EXEC_ENV))
        previous = _forward_signals(pid)
        try:
            _copy_stdio(stdio[0][1], stdio[1][0], stdio[2][0], pid)
            _pid, status = os.waitpid(pid, 0)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)  # type: ignore[arg-type]
        code = _exit_status(status)
    if mode == "exec" and code != 0:
        raise CommandFailed(f"CT {ct.ctid}: command exited with status {code}")
    return code


def _copy_stdio(to_stdin: int, from_stdout: int, from_stderr: int, joiner: int) -> None:
    """Copy our stdin into the CT command and its output to ours until the command ends.

    The command ends when ``joiner`` exits (it waits for the command), not when its pipes
    close: a process it started in the background may hold them for as long as it runs
    (``sleep 30 &``).  Then what the command wrote is copied (it is in the pipes once it has
    exited) and our ends are closed, as OpenVZ's vzctl does: a background process that
    writes to them later gets EPIPE, so a daemon started this way redirects its output.
    """
    outputs = {from_stdout: sys.stdout.fileno(), from_stderr: sys.stderr.fileno()}
    stdin: int | None = sys.stdin.fileno() if _readable(sys.stdin.fileno()) else None
    if stdin is None:
        os.close(to_stdin)
    exited = os.pidfd_open(joiner)
    pending = b""
    try:
        while outputs:
            readers = [*outputs, exited] + ([stdin] if stdin is not None and not pending else [])
            writers = [to_stdin] if pending else []
            try:
                ready_r, ready_w, _ = select.select(readers, writers, [])
            except InterruptedError:
                continue
            if exited in ready_r:
                break
            for fd in ready_r:
                data = _read(fd)
                if fd == stdin:
                    if data:
                        pending = data
                    else:
                        os.close(to_stdin)
                        stdin = None
                elif data:
                    _write_all(outputs[fd], data)
                else:
                    os.close(fd)
                    del outputs[fd]
            if ready_w:
                try:
                    pending = pending[os.write(to_stdin, pending):]
                except BrokenPipeError:
                    pending, stdin = b"", None
                    os.close(to_stdin)
        for fd, target in outputs.items():
            _write_all(target, read_pending(fd))
            os.close(fd)
    finally:
        os.close(exited)
    if stdin is not None:
        os.close(to_stdin)


def _readable(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _read(fd: int, size: int = 65536) -> bytes:
    try:
        return os.read(fd, size)
    except OSError:
        return b""


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def _terminal_env() -> dict[str, str]:
    return dict(EXEC_ENV, TERM=os.environ.get("TERM", "xterm"))


def _run_on_pty(run: Run, launch: Callable[[], NoReturn],
                say: Callable[[str], None] | None = None) -> int:
    """Run ``launch`` (which execs) in the CT as the session leader of a new
    pseudo-terminal from the CT's own devpts, and copy between it and vzctl's terminal
    (:func:`terminal.proxy`); return the exit status.  ``say`` reports entering and
    leaving (``vzctl enter``)."""
    ct = run.ct
    parent_sock, child_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)

    def payload() -> NoReturn:
        master, slave = os.openpty()  # /dev/ptmx of the CT: we are in its mount namespace
        socket.send_fds(child_sock, [b"pty"], [master])
        child_sock.close()
        os.close(master)
        terminal.make_controlling(slave)  # a session leader already (_join)
        for fd in (0, 1, 2):
            os.dup2(slave, fd)
        if slave > 2:
            os.close(slave)
        launch()

    errors_r, errors_w = _joiner_errors()
    null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
    pid = _fork_joiner(run, (null, null, errors_w), payload)
    child_sock.close()
    try:
        _msg, fds, _flags, _addr = socket.recv_fds(parent_sock, 16, 1)
    finally:
        parent_sock.close()
    if not fds:
        _pid, status = os.waitpid(pid, 0)
        _relay(errors_r)
        raise VzError(f"cannot open a terminal in CT {ct.ctid}", exit_code=_exit_status(status) or 3)
    if say:
        say(f"entered into CT {ct.ctid}")
    exited = os.pidfd_open(pid)
    try:
        terminal.proxy(fds[0], exited)  # until the command ends, as _copy_stdio
    finally:
        os.close(exited)
    _pid, status = os.waitpid(pid, 0)
    _relay(errors_r)
    if say:
        say(f"exited from CT {ct.ctid}")
    return _exit_status(status)


def enter(engine: Engine, ct: Container, command: Sequence[str] = ()) -> int:
    """``vzctl enter``: an interactive root shell on a pseudo-terminal of the CT's own devpts.

    With ``command``, run it first and stay in the shell (``vzctl enter --exec``).
    """
    run = running(engine, ct)
    env = _terminal_env()

    def shell() -> NoReturn:
        path = next((s for s in SHELLS if os.path.exists(s)), "/bin/sh")  # the CT's files
        if command:
            _exec([path, "-c", f"{' '.join(command)}; exec {path} -l"], dict(env, SHELL=path))
        _exec([path, "-l"], dict(env, SHELL=path))

    return _run_on_pty(run, shell, say=engine.say)
