"""The host side of ``vzctl enter``: copy between the user's terminal and a CT pty."""

from __future__ import annotations

import fcntl
import os
import select
import signal
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


def proxy(master: int) -> None:
    """Copy stdin to ``master`` and ``master`` to stdout until the CT side hangs up."""
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    interactive = os.isatty(stdin)
    saved = termios.tcgetattr(stdin) if interactive else None
    if interactive:
        _copy_window_size(stdin, master)
        signal.signal(signal.SIGWINCH, lambda *_: _copy_window_size(stdin, master))
        tty.setraw(stdin)
    try:
        readers = [master, stdin]
        while True:
            try:
                ready, _, _ = select.select(readers, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave descriptor is closed
                    data = b""
                if not data:
                    break
                while data:
                    data = data[os.write(stdout, data):]
            if stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    readers.remove(stdin)
                    os.write(master, b"\x04")
                    continue
                while data:
                    data = data[os.write(master, data):]
    finally:
        if saved is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
            signal.signal(signal.SIGWINCH, signal.SIG_DFL)
        os.close(master)
