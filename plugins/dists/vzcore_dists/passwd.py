"""``--userpasswd USER:PASSWORD``: the grammar, and hashing with libxcrypt.

The hash is made on the host by libxcrypt (``libcrypt.so.1``, the library Debian's own
``passwd``, ``chpasswd`` and PAM use) through ctypes: Python's ``crypt`` module is
deprecated and gone in 3.13, and running the CT's ``chpasswd`` would mean executing the
CT's binaries as the host's root for a stopped CT.  ``crypt_gensalt`` draws the salt from
the kernel's random source.  The method is the distribution's: yescrypt (``$y$``) for
Debian 12, SHA-512 (``$6$``) where the CT's own ``crypt`` has no yescrypt (busybox).
"""

from __future__ import annotations

import ctypes
import re

import attrs

from vzcore.errors import VzError

CHANGEPASS = 74  # VZ_CHANGEPASS
USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
"""A POSIX-ish login name as useradd(8) accepts (no colon, no space, no newline)."""

METHODS = {"yescrypt": b"$y$", "sha512": b"$6$", "sha256": b"$5$"}
CRYPT_DATA_SIZE = 32768  # sizeof(struct crypt_data) in libxcrypt
OUTPUT_SIZE = 256


@attrs.frozen(repr=False)
class UserPass:
    """One ``USER:PASSWORD``; the password never appears in a repr or a message."""

    user: str
    password: str

    def __repr__(self) -> str:
        return f"UserPass({self.user!r}, <hidden>)"


class UserPassType:
    """``--userpasswd USER:PASSWORD`` (repeatable), never saved in the config."""

    metavar = "USER:PASSWORD"

    def parse(self, text: str) -> UserPass:
        user, colon, password = text.partition(":")
        if not colon:
            raise ValueError("expected USER:PASSWORD (no ':' given)")
        if not USER_NAME.fullmatch(user):
            raise ValueError(f"{user!r} is not a user name (letters, digits, '_', '.', '-'; "
                             "32 characters at most)")
        if not password:
            raise ValueError(f"the password for {user!r} is empty; give one after the ':'")
        bad = next((c for c in password if c in ":\n\r\0"), None)
        if bad is not None:
            raise ValueError(f"the password for {user!r} contains {bad!r}, which the CT's "
                             "password files cannot hold; choose another")
        return UserPass(user, password)

    def to_conf(self, value: UserPass) -> str:
        return f"{value.user}:{value.password}"


def merge(_old: str | None, values: list[UserPass]) -> str | None:
    """Several ``--userpasswd`` in one command: one per line (a password has no newline)."""
    return "\n".join(f"{v.user}:{v.password}" for v in values) or None


def parse_text(text: str | None) -> list[UserPass]:
    """The change's text back into pairs (checked again: it is input)."""
    grammar = UserPassType()
    return [grammar.parse(line) for line in (text or "").splitlines() if line]


def _libcrypt() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL("libcrypt.so.1", use_errno=True)
    except OSError as exc:
        raise VzError(f"cannot load libcrypt.so.1 to hash the password ({exc}); install "
                      "libcrypt1", exit_code=CHANGEPASS) from exc
    lib.crypt_gensalt_rn.restype = ctypes.c_char_p
    lib.crypt_gensalt_rn.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
                                     ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.crypt_rn.restype = ctypes.c_char_p
    lib.crypt_rn.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int]
    return lib


def hash_password(password: str, method: str) -> str:
    """A crypt(3) hash of ``password`` with ``method`` (``yescrypt``, ``sha512``...) and a
    fresh salt from the kernel's random source."""
    lib = _libcrypt()
    setting_buf = ctypes.create_string_buffer(OUTPUT_SIZE)
    setting = lib.crypt_gensalt_rn(METHODS[method], 0, None, 0, setting_buf, OUTPUT_SIZE)
    if not setting:
        raise VzError(f"libcrypt cannot make a {method} salt (errno {ctypes.get_errno()})",
                      exit_code=CHANGEPASS)
    data = ctypes.create_string_buffer(CRYPT_DATA_SIZE)
    hashed = lib.crypt_rn(password.encode(), setting, data, CRYPT_DATA_SIZE)
    ctypes.memset(data, 0, CRYPT_DATA_SIZE)  # the buffer held the password
    if not hashed or hashed.startswith(b"*"):
        raise VzError(f"libcrypt cannot hash with {method} (errno {ctypes.get_errno()})",
                      exit_code=CHANGEPASS)
    return hashed.decode()
