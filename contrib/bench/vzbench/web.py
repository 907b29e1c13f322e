"""The page, the HTTP probe and the load generator (wrk) shared by the seed and density
parts."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

PAGE_BYTES = 4300
"""The announcement's pages were 4.2 KB; every server here serves 4,300 bytes."""

LUA = """\
-- one server per wrk thread, round robin over the addresses in $WRK_TARGETS
local targets = {}
for line in io.lines(os.getenv("WRK_TARGETS")) do targets[#targets + 1] = line end
local n = 0
function setup(thread)
  n = n + 1
  local target = targets[(n - 1) % #targets + 1]
  local host, port = target:match("([^:]+):(%d+)")
  thread.addr = wrk.lookup(host, port)[1]
end
"""


def page(name: str) -> bytes:
    """A 4,300-byte HTML page naming its server."""
    head = f"<html><head><title>{name}</title></head><body><h1>{name}</h1><p>".encode()
    tail = b"</p></body></html>\n"
    return head + b"x" * (PAGE_BYTES - len(head) - len(tail)) + tail


def answers(address: str, port: int = 80, timeout: float = 1.0) -> bool:
    """Whether ``http://address:port/`` answers 200 with the whole page within ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((address, port), timeout=timeout) as conn:
            conn.sendall(f"GET / HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            data = b""
            while True:
                conn.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 200") and data.endswith(b"</html>\n") and \
        len(data.split(b"\r\n\r\n", 1)[-1]) == PAGE_BYTES


def silent(addresses: Sequence[str], port: int = 80, timeout: float = 1.0) -> list[str]:
    """The addresses that do not answer within ``timeout`` (probed 32 at a time)."""
    with ThreadPoolExecutor(32) as pool:
        ok = list(pool.map(lambda a: answers(a, port, timeout), addresses))
    return [a for a, good in zip(addresses, ok, strict=True) if not good]


def wait_serving(addresses: Sequence[str], limit: float, port: int = 80) -> float:
    """Seconds until every address answers; raises after ``limit`` seconds."""
    started = time.monotonic()
    waiting = list(addresses)
    while waiting:
        waiting = silent(waiting, port, timeout=2.0)
        if waiting and time.monotonic() - started > limit:
            raise RuntimeError(f"{len(waiting)} of {len(addresses)} servers not answering after "
                               f"{limit:.0f} s (e.g. {waiting[0]})")
        if waiting:
            time.sleep(0.5)
    return time.monotonic() - started


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(text: str) -> dict[str, float]:
    """Requests/s, latency (ms) and error counts from wrk's output."""
    result: dict[str, float] = {}
    match = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not match:
        raise RuntimeError(f"wrk printed no rate: {text.strip()[-500:]}")
    result["req_s"] = float(match.group(1))
    match = re.search(r"(\d+) requests in", text)
    result["requests"] = float(match.group(1)) if match else 0.0
    match = re.search(r"Latency\s+([\d.]+)(us|ms|s)", text)
    if match:
        result["latency_avg_ms"] = float(match.group(1)) * UNITS[match.group(2)]
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    result["socket_errors"] = float(sum(map(int, errors.groups()))) if errors else 0.0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    result["non_2xx"] = float(non2xx.group(1)) if non2xx else 0.0
    return result


class WrkTimeout(RuntimeError):
    """wrk did not end long after its run's duration (seen once against 500 host servers)."""


def load(targets: Sequence[str], work: Path, seconds: int, label: str) -> dict[str, float]:
    """One wrk run: a thread per server (``ADDR:PORT`` each), two connections per server,
    ``seconds`` long; its figures."""
    script, listing = work / "targets.lua", work / f"targets-{label}.txt"
    script.write_text(LUA)
    listing.write_text("".join(f"{t}\n" for t in targets))
    threads = len(targets)
    first = targets[0]
    argv = ["wrk", f"-t{threads}", f"-c{2 * threads}", f"-d{seconds}s", "--timeout", "2s",
            "-s", str(script), f"http://{first}/"]
    try:
        result = subprocess.run(argv, env={"WRK_TARGETS": str(listing), "PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, check=False, timeout=seconds + 60)
    except subprocess.TimeoutExpired:  # (run() has killed it)
        raise WrkTimeout(f"wrk against {threads} {label} servers did not end within "
                         f"{seconds + 60} s of a {seconds} s run") from None
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed: {result.stderr.strip()[-500:]}")
    return parse_wrk(result.stdout)
