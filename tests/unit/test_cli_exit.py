"""vzctl and vzlist end without the interpreter's teardown (``exit_now``): whatever they
printed must still arrive, their exit code must be kept, and lost output must not pass
for success."""

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


def test_output_lost_on_a_full_device_is_not_success() -> None:
    with open("/dev/full", "wb") as full:
        result = _run_exit_now(0, "out", stdout=full, stderr=subprocess.PIPE)
        failed = _run_exit_now(8, "out", stdout=full, stderr=subprocess.PIPE)
    assert result.returncode == 120  # what Python's own teardown returns for a failed flush
    assert failed.returncode == 8  # a command's own failure code is not hidden


def _console_script(name: str) -> Path:
    script = Path(sys.executable).parent / name
    assert script.exists(), f"{name} is not installed beside {sys.executable}; run contrib/setup.sh --test"
    return script


def test_console_scripts_run_with_stdout_or_stderr_closed() -> None:
    vzctl, vzlist = _console_script("vzctl"), _console_script("vzlist")
    # Python sets sys.stdout or sys.stderr to None for a descriptor closed at start.
    no_stdout = subprocess.run(["sh", "-c", f"exec {vzctl} --version >&-"],
                               capture_output=True, text=True, check=False)
    assert (no_stdout.returncode, no_stdout.stderr) == (0, "")
    no_stderr = subprocess.run(["sh", "-c", f"exec {vzctl} --version 2>&-"],
                               capture_output=True, text=True, check=False)
    assert (no_stderr.returncode, no_stderr.stdout) == (0, f"vzctl {vzcore.__version__} (vzcore)\n")
    usage = subprocess.run([vzlist, "--no-such-flag"], capture_output=True, text=True, check=False)
    assert usage.returncode == 20  # vzctl's "invalid syntax"
    assert "--no-such-flag" in usage.stderr
