"""Progress of a template build, from debootstrap's machine-readable output.

debootstrap's ``--debian-installer`` mode writes, on file descriptor 3, what it otherwise
prints for people, as records: ``P: NOW END STAGE`` (a stage's progress), ``I: NAME`` /
``IA: ARG``... / ``IF: FORMAT`` (an info message), ``W:``/``E:`` likewise.  That is the
interface debian-installer reads; here :class:`DebootstrapOutput` turns it into
:class:`Step`\\ s ("retrieving 57/240 packages (12.1/45.0 MB)") and :class:`Reporter` shows
them: one updated line on a terminal, else a line per stage and per tenth of it (a CI log
stays short).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import TextIO

import attrs

STAGES = {
    # debootstrap's stage name → what the user reads
    "DOWNREL": "reading the mirror's release file",
    "DOWNRELSIG": "checking the release signature",
    "DOWNPKGS": "reading the package index",
    "DOWNMAINPKGS": "reading the package index",
    "SIZEDEBS": "resolving packages",
    "DOWNDEBS": "retrieving",
    "EXTRACTPKGS": "extracting",
    "INSTCORE": "installing the core",
    "UNPACKREQ": "unpacking required",
    "CONFREQ": "configuring required",
    "UNPACKBASE": "unpacking base",
    "CONFBASE": "configuring base",
}


@attrs.define
class Step:
    """One stage of the build and how far it is: ``now``/``total`` packages (or ``None``)."""

    stage: str
    now: int | None = None
    total: int | None = None
    detail: str = ""

    def __str__(self) -> str:
        text = self.stage
        if self.now is not None and self.total:
            text += f" {self.now}/{self.total}"
        return f"{text} {self.detail}".strip()


def _format(fmt: str, args: list[str]) -> str:
    """debootstrap's printf format with its arguments (``%s`` only, as it uses)."""
    parts = iter(args)
    return re.sub(r"%s", lambda _m: next(parts, ""), fmt).replace("%%", "%")


class DebootstrapOutput:
    """Feeds on debootstrap's fd-3 records; calls ``on_step`` with each new :class:`Step`
    and keeps the warnings and the error for the final message."""

    def __init__(self, on_step: Callable[[Step], None]) -> None:
        self.on_step = on_step
        self.packages = 0        # how many debootstrap installs (SIZEDEBS's end)
        self.retrieved = 0
        self.warnings: list[str] = []
        self.error: str | None = None
        self._kind = ""
        self._name = ""
        self._args: list[str] = []
        self._bytes: tuple[int, int] | None = None

    def feed(self, line: str) -> None:
        line = line.rstrip("\n")
        tag, _, value = line.partition(": ")
        if tag in ("I", "W", "E", "P"):
            self._kind, self._args = tag, []
            if tag == "P":
                self._progress(value)
            else:
                self._name = value
        elif tag in ("IA", "WA", "EA", "PA"):
            self._args.append(value)
        elif tag in ("IF", "WF", "EF"):
            self._message(tag[0], _format(value, self._args))

    def _progress(self, value: str) -> None:
        words = value.split()
        if len(words) != 3 or not (words[0].isdigit() and words[1].isdigit()):
            return
        now, end, name = int(words[0]), int(words[1]), words[2]
        if name == "SIZEDEBS":
            self.packages, self.retrieved = end, 0
        if name == "DOWNDEBS":
            self._bytes = (now, end)
            self.on_step(self._retrieving())
            return
        stage = STAGES.get(name)
        if stage is None:
            return
        if name in ("UNPACKREQ", "CONFREQ", "UNPACKBASE", "CONFBASE", "EXTRACTPKGS"):
            self.on_step(Step(stage, now, end, "packages"))
        else:
            self.on_step(Step(stage))

    def _retrieving(self) -> Step:
        detail = "packages"
        if self._bytes and self._bytes[1]:  # debootstrap reports the bytes only at both ends
            detail += f" ({self._bytes[1] / 1e6:.1f} MB)"
        return Step("retrieving", self.retrieved, self.packages or None, detail)

    def _message(self, kind: str, text: str) -> None:
        if kind == "E":
            self.error = text
        elif kind == "W":
            self.warnings.append(text)
        elif self._name == "RETRIEVING" and self.packages:
            self.retrieved += 1
            self.on_step(self._retrieving())


class Reporter:
    """Shows steps on ``stream`` (stderr): a line rewritten in place on a terminal; in a
    log, a line when the stage changes and at each further tenth of it."""

    def __init__(self, name: str, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.name = name
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.tty = self.stream.isatty()
        self._stage = ""
        self._tenth = -1
        self._open_line = False

    def __call__(self, step: Step) -> None:
        if self.quiet:
            return
        text = f"template {self.name}: {step}"
        if self.tty:
            self.stream.write(f"\r\033[K{text}")
            self._open_line = True
        else:
            tenth = 10 * step.now // step.total if step.now is not None and step.total else -1
            if step.stage == self._stage and tenth == self._tenth:
                return
            self._stage, self._tenth = step.stage, tenth
            self.stream.write(text + "\n")
        self.stream.flush()

    def stage(self, stage: str) -> None:
        """A stage of vzcore's own (``preparing``, ``packing``)."""
        self(Step(stage))

    def done(self, message: str) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        if not self.quiet:
            self.stream.write(message + "\n")
            self.stream.flush()
