"""OpenVZ's shell-variable config files (``vz.conf``, ``CTID.conf``), read and rewritten.

A file is a list of lines; ``KEY="value"`` lines are parsed, every other line (comments,
blank lines, anything else a shell would accept) is kept verbatim.  Rewriting changes only
the lines of keys that changed, appends new keys, and keeps unknown keys and comments.
Writes are atomic: a temporary file in the same directory is written, fsync'ed and
renamed over the old one, so a full disk or a crash leaves the old file intact.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from vzcore.errors import ConfigError, ConfigSaveError

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*$")


def _unquote(raw: str, where: str) -> str:
    """Decode the value of ``KEY=value`` as a shell would for vzctl's configs: one bare,
    "double" (with ``\\`` escapes) or 'single' quoted word, then an optional comment."""
    raw = raw.strip()
    if raw[:1] in ('"', "'"):
        quote_char = raw[0]
        value: list[str] = []
        i = 1
        while i < len(raw) and raw[i] != quote_char:
            if quote_char == '"' and raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in '\\"$`':
                i += 1
            value.append(raw[i])
            i += 1
        if i >= len(raw):
            kind = "double" if quote_char == '"' else "single"
            raise ConfigError(f"{where}: unterminated {kind} quote")
        rest = raw[i + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(f"{where}: unexpected text after the quoted value: {rest!r}")
        return "".join(value)
    return raw.split("#", 1)[0].rstrip() if "#" in raw else raw


def quote(value: str) -> str:
    """Encode ``value`` as a double-quoted shell word, as vzctl writes it: ``$`` is left
    alone so that ``VE_ROOT="/vz/root/$VEID"`` expands when a script sources the file."""
    escaped = re.sub(r'([\\"`])', r"\\\1", value)
    return f'"{escaped}"'


class ConfigFile:
    """One config file: an ordered mapping of keys to string values that keeps its text."""

    def __init__(self, path: Path, lines: list[str] | None = None) -> None:
        self.path = path
        self._lines: list[str] = lines or []
        self._values: dict[str, str] = {}
        self._line_of: dict[str, int] = {}
        for number, line in enumerate(self._lines):
            match = _ASSIGNMENT.match(line)
            if match:
                key, raw = match.groups()
                self._values[key] = _unquote(raw, f"{path}:{number + 1}")
                self._line_of[key] = number

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> ConfigFile:
        """Read ``path``; with ``missing_ok`` a missing file reads as empty."""
        try:
            text = path.read_text()
        except FileNotFoundError:
            if missing_ok:
                return cls(path)
            raise
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
        return cls(path, text.splitlines())

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._values.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def items(self) -> Iterator[tuple[str, str]]:
        return iter(self._values.items())

    def as_dict(self) -> dict[str, str]:
        return dict(self._values)

    def set(self, key: str, value: str | None) -> None:
        """Set ``key`` (``None`` removes it), rewriting only its own line."""
        if value is None:
            number = self._line_of.pop(key, None)
            self._values.pop(key, None)
            if number is not None:
                del self._lines[number]
                self._line_of = {k: n - (n > number) for k, n in self._line_of.items()}
            return
        line = f"{key}={quote(value)}"
        if key in self._line_of:
            self._lines[self._line_of[key]] = line
        else:
            self._line_of[key] = len(self._lines)
            self._lines.append(line)
        self._values[key] = value

    def update(self, values: Mapping[str, str | None]) -> None:
        for key, value in values.items():
            self.set(key, value)

    def text(self) -> str:
        return "".join(line + "\n" for line in self._lines)

    def save(self, path: Path | None = None) -> None:
        """Write atomically to ``path`` (default: where it was read from)."""
        atomic_write(path or self.path, self.text(), durable=True)


def atomic_write(path: Path, text: str, *, durable: bool, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never half.

    ``durable`` adds the fsyncs that make the rename survive a power loss (config files);
    runtime state on tmpfs does without them.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = os.stat(path).st_mode & 0o7777
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        try:
            data = text.encode()
            while data:
                data = data[os.write(fd, data):]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
        if durable:
            dirfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigSaveError(
            f"cannot write {path}: {exc.strerror or exc}; the old file is unchanged") from exc

