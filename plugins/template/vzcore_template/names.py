"""Template names, OpenVZ's way: ``DIST-VERSION-ARCH[-FLAVOUR]`` (``debian-12-x86_64-minimal``).

The architecture is spelled as OpenVZ's precreated templates spell it (``x86_64``, not
Debian's ``amd64``); :data:`DEBIAN_ARCHES` maps between the two.
"""

from __future__ import annotations

import re
import subprocess

import attrs

from vzcore.errors import InvalidValue

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
"""Any cache name (``OSTEMPLATE``): what the template plugin accepts and ``remove`` takes."""

DEBIAN_SUITES = {"11": "bullseye", "12": "bookworm", "13": "trixie"}
"""The Debian releases ``vzctl template create`` builds: version → suite (codename)."""

DEBIAN_ARCHES = {"amd64": "x86_64", "i386": "x86", "arm64": "aarch64", "armhf": "armhf",
                 "ppc64el": "ppc64le", "s390x": "s390x"}
"""Debian architecture → the architecture part of an OpenVZ template name."""

FLAVOURS = ("minimal", "web")
INITS = ("systemd", "sysvinit")
PACKAGE_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")


@attrs.frozen
class Distribution:
    """What ``vzctl template create DIST-VERSION`` asked for: ``debian-12``."""

    dist: str
    version: str

    @property
    def suite(self) -> str:
        return DEBIAN_SUITES[self.version]

    def __str__(self) -> str:
        return f"{self.dist}-{self.version}"


def parse_distribution(text: str) -> Distribution:
    """``debian-12`` → Distribution; anything else is refused with the choices."""
    known = ", ".join(f"debian-{v}" for v in DEBIAN_SUITES)
    dist, _, version = text.partition("-")
    if dist != "debian" or version not in DEBIAN_SUITES:
        raise InvalidValue(f"template create: unknown distribution {text!r}; "
                           f"vzctl builds {known} (DIST-VERSION)")
    return Distribution(dist, version)


def host_debian_arch() -> str:
    """The host's Debian architecture (``dpkg --print-architecture``): debootstrap builds
    for it, so the CT's binaries run on this kernel."""
    return subprocess.run(["dpkg", "--print-architecture"], check=True, capture_output=True,
                          text=True).stdout.strip()


def template_name(distribution: Distribution, arch: str, flavour: str, init: str) -> str:
    """The cache name: ``debian-12-x86_64-minimal``; another init than systemd (Debian's
    default) is part of the flavour (``debian-12-x86_64-minimal-sysvinit``), so both builds
    can sit side by side in one cache."""
    suffix = flavour if init == "systemd" else f"{flavour}-{init}"
    return f"{distribution}-{DEBIAN_ARCHES.get(arch, arch)}-{suffix}"


def check_name(name: str, what: str = "template name") -> str:
    if not NAME_RE.fullmatch(name) or len(name) > 128:
        raise InvalidValue(f"invalid {what} {name!r}: use letters, digits, '.', '_', '+', '-' "
                           "(DIST-VERSION-ARCH[-FLAVOUR], e.g. debian-12-x86_64-minimal)")
    return name


def check_choice(value: str, choices: tuple[str, ...], option: str) -> str:
    if value not in choices:
        raise InvalidValue(f"template create: unknown {option} {value!r}; "
                           f"choose one of {', '.join(choices)}")
    return value


def parse_packages(text: str | None) -> tuple[str, ...]:
    """``--packages a,b`` (commas or spaces) → Debian package names, checked."""
    names = tuple(p for p in re.split(r"[,\s]+", text or "") if p)
    for name in names:
        if not PACKAGE_RE.fullmatch(name):
            raise InvalidValue(f"template create: --packages: {name!r} is not a Debian package "
                               "name (lower-case letters, digits, '+', '-', '.')")
    return names
