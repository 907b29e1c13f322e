"""The one-file FUSE server: the protocol against a fake kernel, then on the real one."""

from __future__ import annotations

import errno
import os
import select
import shutil
import socket
import stat
import struct
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore_beancounters import fuse

CONTENT = b"Version: 2.5\nhello\n"


def request(opcode: int, unique: int, body: bytes = b"", nodeid: int = 1) -> bytes:
    return fuse.IN_HEADER.pack(fuse.IN_HEADER.size + len(body), opcode, unique, nodeid,
                               0, 0, 1, 0, 0) + body


def exchange(kernel: socket.socket, server: fuse.FileServer, data: bytes) -> tuple[int, bytes]:
    kernel.send(data)
    server.serve_one()
    reply = kernel.recv(1 << 17)
    length, error, _unique = fuse.OUT_HEADER.unpack_from(reply)
    assert length == len(reply)
    return error, reply[fuse.OUT_HEADER.size:]


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, fuse.FileServer]]:
    kernel, daemon = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    server = fuse.FileServer(daemon.detach(), lambda: CONTENT, len(CONTENT))
    yield kernel, server
    kernel.close()
    server.close()


def test_protocol(pair: tuple[socket.socket, fuse.FileServer]) -> None:
    kernel, server = pair
    error, body = exchange(kernel, server, request(fuse.INIT, 1, fuse.INIT_IN.pack(7, 44, 65536, 0)))
    assert error == 0 and len(body) == 64
    assert struct.unpack_from("<III", body) == (7, 31, 65536)
    error, body = exchange(kernel, server, request(fuse.GETATTR, 2, bytes(16)))
    attr = fuse.ATTR.unpack_from(body, fuse.ATTR_OUT.size)
    assert (attr[0], attr[1], stat.S_IFMT(attr[9]), attr[9] & 0o777) == (1, len(CONTENT),
                                                                          stat.S_IFREG, 0o400)
    error, body = exchange(kernel, server, request(fuse.OPEN, 3, struct.pack("<II", os.O_RDONLY, 0)))
    handle, flags, _ = fuse.OPEN_OUT.unpack(body)
    assert flags & fuse.FOPEN_DIRECT_IO
    read = struct.pack("<QQIIQII", handle, 8, 4096, 0, 0, 0, 0)
    assert exchange(kernel, server, request(fuse.READ, 4, read)) == (0, CONTENT[8:])
    read = struct.pack("<QQIIQII", handle, 4096, 4096, 0, 0, 0, 0)
    assert exchange(kernel, server, request(fuse.READ, 5, read)) == (0, b"")
    assert exchange(kernel, server, request(fuse.RELEASE, 6, struct.pack("<QIIQ", handle, 0, 0, 0)))[0] == 0
    assert server.handles == {}
    assert exchange(kernel, server, request(fuse.LOOKUP, 7, b"x\0"))[0] == -errno.ENOENT
    assert exchange(kernel, server, request(99, 8))[0] == -errno.ENOSYS
    kernel.send(request(fuse.FORGET, 9, struct.pack("<Q", 1)))
    server.serve_one()  # no reply to FORGET
    kernel.setblocking(False)
    with pytest.raises(BlockingIOError):
        kernel.recv(100)
    kernel.setblocking(True)
    with pytest.raises(fuse.Disconnected):
        exchange(kernel, server, request(fuse.DESTROY, 10))


def _serve(server: fuse.FileServer, stop: threading.Event) -> None:
    while not stop.is_set():
        ready, _, _ = select.select([server.fd], [], [], 0.05)
        if ready:
            try:
                server.serve_one()
            except fuse.Disconnected:
                return


@pytest.mark.root
@pytest.mark.needs("busybox")
def test_a_real_mount_serves_read_and_sendfile(tmp_path: Path) -> None:
    if not os.path.exists("/dev/fuse"):
        pytest.skip("needs /dev/fuse (the fuse module)")
    target = tmp_path / "user_beancounters"
    target.write_text("")
    fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
    renders = []

    def render() -> bytes:
        renders.append(1)
        return CONTENT

    server = fuse.FileServer(fd, render, len(CONTENT))
    mounts.mount("vzubc", target, "fuse.vzubc", mounts.MS_RDONLY | mounts.MS_NOSUID | mounts.MS_NODEV,
                 f"fd={fd},{fuse.MOUNT_OPTIONS}")
    stop = threading.Event()
    thread = threading.Thread(target=_serve, args=(server, stop))
    thread.start()
    try:
        assert target.read_bytes() == CONTENT
        # busybox cat copies with sendfile(2), which goes through the page cache and stops
        # at the file's size: the size must be true.
        cat = subprocess.run([shutil.which("busybox") or "busybox", "cat", str(target)],
                             capture_output=True, check=True, timeout=10)
        assert cat.stdout == CONTENT
        st = target.stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_size) == (0o400, 0, len(CONTENT))
        assert len(renders) == 2  # one rendering per open
    finally:
        mounts.umount(target, detach=True)
        thread.join(timeout=10)
        stop.set()
        thread.join()
        server.close()
