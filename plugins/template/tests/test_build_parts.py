"""The parts of ``vzctl template create`` that need no mirror: debootstrap's progress
records turned into steps, the host's mirror read from apt's sources, template names."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from vzcore.errors import InvalidValue
from vzcore_template import mirror, names
from vzcore_template.progress import DebootstrapOutput, Reporter, Step

# What debootstrap --debian-installer writes on fd 3 (functions: info, progress, error)
TRANSCRIPT = """\
P: 0 100 DOWNREL
PF: Downloading Release file
I: RETRIEVING
IA: InRelease
IA:
IF: Retrieving %s %s
P: 0 3 SIZEDEBS
PF: Finding package sizes
P: 3 3 SIZEDEBS
PF: Finding package sizes
P: 0 3145728 DOWNDEBS
PF: Downloading packages
I: RETRIEVING
IA: adduser
IA: 3.134
IF: Retrieving %s %s
I: VALIDATING
IA: adduser
IA: 3.134
IF: Validating %s %s
I: RETRIEVING
IA: apt
IA: 2.6.1
IF: Retrieving %s %s
I: RETRIEVING
IA: bash
IA: 5.2.15
IF: Retrieving %s %s
P: 1 2 UNPACKREQ
PF: Unpacking required packages
P: 2 2 UNPACKREQ
PF: Unpacking required packages
P: 1 2 CONFBASE
PF: Configuring base system
W: CHECKSUM
WA: bash
WF: %s looked odd
E: COULDNTDL
EA: cron
EF: Couldn't download package %s
"""


def test_steps_from_debootstrap_records() -> None:
    steps: list[Step] = []
    output = DebootstrapOutput(steps.append)
    for line in TRANSCRIPT.splitlines(keepends=True):
        output.feed(line)
    shown = [str(s) for s in steps]
    assert shown == [
        "reading the mirror's release file",
        "resolving packages", "resolving packages",
        "retrieving 0/3 packages (3.1 MB)",
        "retrieving 1/3 packages (3.1 MB)",
        "retrieving 2/3 packages (3.1 MB)",
        "retrieving 3/3 packages (3.1 MB)",
        "unpacking required 1/2 packages", "unpacking required 2/2 packages",
        "configuring base 1/2 packages",
    ]
    assert output.packages == 3
    assert output.warnings == ["bash looked odd"]
    assert output.error == "Couldn't download package cron"


def test_a_log_gets_a_line_per_stage_and_tenth() -> None:
    """Not a terminal (CI's log): no carriage returns, at most one line per tenth."""
    stream = io.StringIO()
    report = Reporter("debian-12-x86_64-minimal", stream)
    report.stage("resolving packages")
    for n in range(1, 241):
        report(Step("retrieving", n, 240, "packages"))
    report.stage("packing")
    report.done("template debian-12-x86_64-minimal: created")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "template debian-12-x86_64-minimal: resolving packages"
    assert lines[1] == "template debian-12-x86_64-minimal: retrieving 1/240 packages"
    assert "template debian-12-x86_64-minimal: retrieving 240/240 packages" in lines
    assert 10 <= len(lines) - 3 <= 11
    assert lines[-2:] == ["template debian-12-x86_64-minimal: packing",
                          "template debian-12-x86_64-minimal: created"]


def test_quiet_shows_nothing() -> None:
    stream = io.StringIO()
    report = Reporter("x", stream, quiet=True)
    report(Step("retrieving", 1, 2))
    report.done("done")
    assert stream.getvalue() == ""


def test_mirror_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d/debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "# the main archive\nTypes: deb deb-src\nURIs: http://mirror.example/debian/\n"
        "Suites: bookworm bookworm-updates\nComponents: main\n")
    found = mirror.host_mirrors(tmp_path)
    assert found == mirror.Mirrors("http://mirror.example/debian",
                                   "http://mirror.example/debian-security")


def test_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb-src http://src.example/debian bookworm main\n"
        "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://one.example/debian bookworm main\n")
    assert mirror.host_mirrors(tmp_path).main == "http://one.example/debian"


def test_no_mirror_configured_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InvalidValue, match="--mirror URL"):
        mirror.host_mirrors(tmp_path)


def test_template_names() -> None:
    dist = names.parse_distribution("debian-12")
    assert dist.suite == "bookworm"
    assert names.template_name(dist, "amd64", "minimal", "systemd") == "debian-12-x86_64-minimal"
    assert names.template_name(dist, "amd64", "web", "sysvinit") == "debian-12-x86_64-web-sysvinit"
    assert names.template_name(dist, "arm64", "web", "systemd") == "debian-12-aarch64-web"


def test_only_the_web_flavours_recipe_changed_with_its_tuning() -> None:
    """The web flavour's preparation has a recipe number of its own: its caches are rebuilt
    by ``--reuse``, the minimal flavour's (which the test templates are) are kept."""
    import hashlib
    import json

    from vzcore_template import __version__
    from vzcore_template.build import RECIPE_VERSION, Request
    from vzcore_template.mirror import Mirrors

    mirrors = Mirrors("http://mirror.example/debian", "http://mirror.example/security")

    def request(flavour: str) -> Request:
        return Request(name="t", distribution=names.parse_distribution("debian-12"), arch="amd64",
                       flavour=flavour, init="sysvinit", mirrors=mirrors)

    def old_recipe(r: Request) -> str:  # the formula before the flavours had their own number
        return hashlib.sha256(json.dumps(
            [str(r.distribution), r.arch, r.flavour, r.init, sorted(r.packages), r.mirrors.main,
             r.mirrors.security, __version__, RECIPE_VERSION]).encode()).hexdigest()

    assert request("minimal").recipe == old_recipe(request("minimal"))
    assert request("web").recipe != old_recipe(request("web"))
