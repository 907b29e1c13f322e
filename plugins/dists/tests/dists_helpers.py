"""Small CT trees for the dists tests: the files of Debian 12 and of the busybox
template that the actions read and write (their real content, abridged)."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

DEBIAN_FILES = {
    "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
                      'VERSION_ID="12"\nID=debian\n',
    "etc/network/interfaces": "# interfaces(5) file used by ifup(8) and ifdown(8)\n"
                              "# Include files from /etc/network/interfaces.d:\n"
                              "source /etc/network/interfaces.d/*\n",
    "etc/login.defs": "MAIL_DIR        /var/mail\nENCRYPT_METHOD SHA512\n",
    "etc/pam.d/common-password": "password\t[success=1 default=ignore]\tpam_unix.so obscure "
                                 "yescrypt\npassword\trequisite\t\t\tpam_deny.so\n",
    "etc/passwd": "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:"
                  "/usr/sbin/nologin\nsshd:x:100:65534::/run/sshd:/usr/sbin/nologin\n"
                  "admin:x:1000:1000::/home/admin:/bin/bash\n",
    "etc/shadow": "root:*:20793:0:99999:7:::\ndaemon:*:20793:0:99999:7:::\n"
                  "sshd:!:20793::::::\n",
    "etc/hostname": "vm\n",
    "etc/resolv.conf": "nameserver 10.255.255.53\n",
    "sbin/ifup": "#!/bin/sh\n",
}

BUSYBOX_FILES = {
    "etc/os-release": 'NAME="vzcore busybox"\nID=busybox\n',
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:"
                  "/bin/false\n",
    "etc/shadow": "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
    "etc/hostname": "localhost\n",
    "etc/resolv.conf": "",
}


def make_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "etc/shadow").chmod(0o640)
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, inode and mtime: a second run of an action changes none."""
    result = {}
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath) / name
            st = path.lstat()
            result[str(path.relative_to(root))] = (path.read_bytes() if path.is_file() else b"",
                                                   st.st_ino, st.st_mtime_ns)
    return result


def crypt_matches(password: str, hashed: str) -> bool:
    """Whether ``hashed`` is a crypt(3) hash of ``password`` (libxcrypt checks it)."""
    lib = ctypes.CDLL("libcrypt.so.1")
    lib.crypt_rn.restype = ctypes.c_char_p
    lib.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    data = ctypes.create_string_buffer(32768)
    return bool(lib.crypt_rn(password.encode(), hashed.encode(), data, 32768) == hashed.encode())


def shadow_hash(root: Path, user: str) -> str:
    for line in (root / "etc/shadow").read_text().splitlines():
        if line.split(":")[0] == user:
            return line.split(":")[1]
    raise AssertionError(f"no {user} in {root}/etc/shadow")
