"""The detach key of ``vzctl console``: OpenVZ's ``Esc .`` at the start of a line, or one
control key given as ``^X``."""

from __future__ import annotations

import pytest

from vzcore.errors import InvalidValue
from vzcore.lifecycle.console import DetachKey, _KeyFilter


def feed(key: DetachKey, *chunks: bytes) -> tuple[bytes, bool]:
    keys = _KeyFilter(key)
    sent = b""
    for chunk in chunks:
        data, detach = keys.feed(chunk)
        sent += data
        if detach:
            return sent, True
    return sent, False


def test_esc_dot_detaches_at_the_start_of_a_line_only() -> None:
    default = DetachKey.parse(101, None)
    assert feed(default, b"\x1b.") == (b"", True)  # the attach starts a line
    assert feed(default, b"ls\r", b"\x1b", b".") == (b"ls\r", True)  # split across reads
    assert feed(default, b"a\x1b.") == (b"a\x1b.", False)  # mid-line: typed through
    assert feed(default, b"\r\x1b[A") == (b"\r\x1b[A", False)  # an arrow key is not it
    assert DetachKey.parse(101, "esc.") == default


@pytest.mark.parametrize(("text", "byte"), [("^]", 0x1D), ("^a", 0x01), ("^A", 0x01),
                                            ("^@", 0x00), ("^_", 0x1F)])
def test_a_control_key_detaches_anywhere(text: str, byte: int) -> None:
    key = DetachKey.parse(101, text)
    assert feed(key, b"abc" + bytes([byte]) + b"lost") == (b"abc", True)
    assert key.describe() == "^" + chr(byte ^ 0x40)


@pytest.mark.parametrize("text", ["x", "^", "^1", "ctrl-a", "^]]", ""])
def test_other_keys_are_refused_naming_the_ct_and_the_forms(text: str) -> None:
    with pytest.raises(InvalidValue) as refused:
        DetachKey.parse(101, text)
    assert "CT 101" in refused.value.message and "^]" in refused.value.message
