"""vzctl and vzlist end without the interpreter's teardown (``exit_now``): whatever they
printed must still arrive, and their exit code must be kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import vzcore


def _run_exit_now(code: int, out: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    script = ("import sys; from vzcore.cli.main import exit_now; "
              f"print({out!r}, end=''); print('err', end='', file=sys.stderr); exit_now({code})")
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", script], check=False, env=buffered, **kwargs)  # type: ignore[call-overload]


def test_buffered_output_arrives_and_the_code_is_kept() -> None:
    result = _run_exit_now(7, "out" * 5000, capture_output=True)
    assert result.returncode == 7
    assert result.stdout == b"out" * 5000
    assert result.stderr == b"err"


def test_a_reader_that_went_away_costs_no_traceback() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `vzlist | head -1` after head exited
    try:
        # still buffered when exit_now flushes it into the broken pipe
        result = _run_exit_now(3, "out", stdout=write_end, stderr=subprocess.PIPE)
    finally:
        os.close(write_end)
    assert result.returncode == 3
    assert result.stderr == b"err"


def test_console_scripts_print_through_exit_now() -> None:
    bin_dir = Path(sys.executable).parent
    version = subprocess.run([bin_dir / "vzctl", "--version"], capture_output=True, text=True,
                             check=False)
    assert (version.returncode, version.stdout) == (0, f"vzctl {vzcore.__version__} (vzcore)\n")
    usage = subprocess.run([bin_dir / "vzlist", "--no-such-flag"], capture_output=True,
                           text=True, check=False)
    assert usage.returncode == 20  # vzctl's "invalid syntax"
    assert "--no-such-flag" in usage.stderr
