"""What a release needs from the source tree: one version, typing marker, changelog entry.

The build itself (sdist + wheel, ``twine check``, a clean install) is ``.ci/package``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import jaxrnn

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_version_has_one_source(pyproject):
    assert "version" not in pyproject["project"]
    assert "version" in pyproject["project"]["dynamic"]
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "jaxrnn.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+([ab]\d+|rc\d+)?", jaxrnn.__version__)


def test_package_is_marked_typed(pyproject):
    assert (ROOT / "jaxrnn" / "py.typed").is_file()
    assert "py.typed" in pyproject["tool"]["setuptools"]["package-data"]["jaxrnn"]
    assert "Typing :: Typed" in pyproject["project"]["classifiers"]


def test_changelog_has_the_current_version():
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[?{re.escape(jaxrnn.__version__)}\]?", changelog, re.M)
    assert "## Unreleased" in changelog


def test_docs_extra_holds_what_mkdocs_yml_needs(pyproject):
    docs = " ".join(pyproject["project"]["optional-dependencies"]["docs"])
    for package in ("mkdocs", "mkdocs-material", "mkdocstrings[python]"):
        assert package in docs
