"""The host side of ``vzctl enter``: copy between the user's terminal and a CT pty."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import sys
import termios
import tty

_TIOCSCTTY = getattr(termios, "TIOCSCTTY", 0x540E)


def make_controlling(fd: int) -> None:
    """Make the terminal ``fd`` the calling session leader's controlling terminal."""
    fcntl.ioctl(fd, _TIOCSCTTY, 0)


def _copy_window_size(source: int, target: int) -> None:
    try:
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)
    except OSError:
        pass


def read_pending(fd: int) -> bytes:
    """What waits in the pipe or terminal ``fd`` now, without waiting for more (a writer
    that keeps writing cannot hold the caller)."""
    size = struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    data = b""
    while len(data) < size:
        try:
            chunk = os.read(fd, size - len(data))
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    return data


def proxy(master: int, exited: int | None = None) -> None:
    """Copy stdin to ``master`` and ``master`` to stdout until the CT side hangs up, or
    until ``exited`` (a pidfd of the process that waits for the command) is readable: then
    copy what the command left and stop, so that a process it started in the background
    and that still holds the terminal does not hold vzctl."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    if interactive:
        _copy_window_size(stdin, master)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(stdin, master))
        tty.setraw(stdin)
    try:
        readers = [master, stdin] + ([exited] if exited is not None else [])
        while True:
            try:
                ready, _, _ = select.select(readers, [], [])
            except InterruptedError:
                continue
            if exited is not None and exited in ready:
                _write_all(stdout, read_pending(master))
                break
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave descriptor is closed
                    data = b""
                if not data:
                    break
                _write_all(stdout, data)
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    readers.remove(stdin)
                    os.write(master, b"\x04")
                    continue
                _write_all(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        os.close(master)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]
