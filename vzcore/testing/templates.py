"""The ``debian_template`` session fixture: Debian 12 templates built before the tests.

Tests run in a network namespace without the mirror, so the templates are built before:
``contrib/test.sh`` runs the real ``vzctl template create debian-12 --flavour minimal``
with ``--init systemd`` and ``--init sysvinit`` into a cache directory (reused while
the recipe is the same) and passes it as ``VZ_TEST_TEMPLATES``.  By hand::

    VZ_ROOT=$PWD/.cache/test-templates vzctl template create debian-12 --reuse
    VZ_ROOT=$PWD/.cache/test-templates vzctl template create debian-12 --init sysvinit --reuse
    export VZ_TEST_TEMPLATES=$PWD/.cache/test-templates/vz/template/cache

A test (of any plugin's suite) asks for the template of an init kind and makes it
available to its ``vz_env``::

    def test_boot(debian_template, vz_env, vzctl):
        template = debian_template("systemd")   # or "sysvinit"
        template.install(vz_env)                # links it into vz_env's template cache
        vzctl("create", 201, "--ostemplate", template.name)

Without ``VZ_TEST_TEMPLATES`` the test is skipped, saying how to build them; in CI
(``VZ_TEST_REQUIRE_ROOT=1``, as contrib/test.sh sets) it fails instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

if TYPE_CHECKING:
    from vzcore.testing.pytest_plugin import VzEnv

ENV = "VZ_TEST_TEMPLATES"
NAMES = {"systemd": "debian-12-x86_64-minimal", "sysvinit": "debian-12-x86_64-minimal-sysvinit"}
"""The test templates: ``vzctl template create debian-12 --flavour minimal --init KIND``."""

SUFFIXES = (".tar.zst", ".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")
"""Tarball suffixes (the template plugin's, which this core module does not import)."""

HOW = ("build them with contrib/test.sh, or by hand: VZ_ROOT=$PWD/.cache/test-templates vzctl "
       "template create debian-12 --reuse [--init sysvinit], then export "
       f"{ENV}=$PWD/.cache/test-templates/vz/template/cache (docs/templates.md)")


@attrs.frozen
class DebianTemplate:
    """A built test template: ``cache_dir / tarball`` with its metadata beside it."""

    cache_dir: Path
    name: str
    init: str
    tarball: Path

    @property
    def metadata(self) -> Path:
        return self.cache_dir / f"{self.name}.json"

    def install(self, env: VzEnv) -> None:
        """Make the template usable as ``--ostemplate NAME`` in ``env``: links to the
        tarball and its metadata in ``env``'s ``$TEMPLATE/cache`` (the shared cache itself
        is never changed by a test)."""
        from vzcore.conffile import ConfigFile
        from vzcore.paths import DEFAULTS, Paths

        conf = ConfigFile.load(env.root / "etc/vz/vz.conf", missing_ok=True)
        target = Paths(env.root).host(conf.get("TEMPLATE") or DEFAULTS["TEMPLATE"]) / "cache"
        target.mkdir(parents=True, exist_ok=True)
        for path in (self.tarball, self.metadata):
            link = target / path.name
            if path.exists() and not link.exists():
                link.symlink_to(path)


def _strict() -> bool:
    return os.environ.get("VZ_TEST_REQUIRE_ROOT", "") not in ("", "0") or bool(os.environ.get("CI"))


def _missing(why: str) -> None:
    message = f"no Debian test template: {why}; {HOW}"
    if _strict():
        pytest.fail(f"{message} (CI must not skip)", pytrace=False)
    pytest.skip(message)


def find(init: str, directory: str | None = None) -> DebianTemplate:
    """The test template for init kind ``init`` in ``$VZ_TEST_TEMPLATES``; skips (fails in
    CI) when it is not there."""
    if init not in NAMES:
        raise ValueError(f"init kind {init!r}: the test templates are {', '.join(NAMES)}")
    directory = directory if directory is not None else os.environ.get(ENV)
    if not directory:
        _missing(f"{ENV} is not set")
    assert directory is not None
    cache_dir = Path(directory)
    name = NAMES[init]
    for suffix in SUFFIXES:
        tarball = cache_dir / f"{name}{suffix}"
        if tarball.is_file():
            return DebianTemplate(cache_dir, name, init, tarball)
    _missing(f"{ENV}={directory} has no {name}.tar.*")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def debian_template() -> Callable[[str], DebianTemplate]:
    """``debian_template("systemd")`` / ``("sysvinit")``: the built Debian 12 minimal
    template of that init kind (:class:`DebianTemplate`: ``cache_dir``, ``name``,
    ``install(vz_env)``).  Skips outside CI, saying how to build them, when they are not
    built; fails in CI."""
    found: dict[str, DebianTemplate] = {}

    def get(init: str = "systemd") -> DebianTemplate:
        if init not in found:
            found[init] = find(init)
        return found[init]

    return get
