"""The hook reference is complete and current, and every hook is exercised by a test."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from vzcore import docgen, hookspecs

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("**When**", "**Where**", "**Returns**", "**Errors**", "Example::")


@pytest.mark.parametrize("name", docgen.hook_names())
def test_hookspec_docstring_has_every_section(name: str) -> None:
    function = getattr(hookspecs, name)
    doc = function.__doc__ or ""
    missing = [s for s in SECTIONS if s not in doc]
    assert not missing, f"{name} lacks {missing}"
    for param in inspect.signature(function).parameters:
        assert f":param {param}:" in doc, f"{name} does not document {param}"


@pytest.mark.parametrize("name", docgen.hook_names())
def test_every_hook_is_exercised_by_a_test(name: str) -> None:
    test_files = [*REPO.glob("tests/**/*.py"), *REPO.glob("plugins/*/tests/*.py")]
    users = [p for p in test_files if name in p.read_text() and p.name != "test_docs.py"]
    assert users, f"no test mentions {name}"


def test_hook_reference_is_current() -> None:
    assert (REPO / "docs/hooks.md").read_text() == docgen.hooks_page(), (
        "docs/hooks.md is stale: run python -m vzcore.docgen")


def test_parameter_reference_is_current() -> None:
    assert (REPO / "docs/parameters.md").read_text() == docgen.parameters_page(), (
        "docs/parameters.md is stale (or a plugin set other than plugins/* is installed): "
        "run contrib/setup.sh --test, then python -m vzcore.docgen")
