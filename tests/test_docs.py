"""The documentation site: it builds with ``--strict``, has a reference entry for every public
name, links only to pages and anchors that exist, and its Python examples run.

A page's ``python`` code blocks run in order as one script (a later block sees the names of
an earlier one); a block fenced as ```` ```python {.no-run} ```` is shown, not run.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

import jaxrnn
import jaxrnn.linen
import jaxrnn.nnx
import jaxrnn.training

# the pages' float32 checks (guides/from-pytorch.md: 1e-5 against torch) mean full float32
pytestmark = pytest.mark.usefixtures("float32_matmuls")

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)
HAS_MKDOCS = all(
    importlib.util.find_spec(m) for m in ("mkdocs", "material", "mkdocstrings_handlers")
)


def python_blocks(markdown: str) -> list[str]:
    """The runnable ``python`` blocks of a page, dedented (blocks inside tabs are indented)."""
    blocks = []
    for m in FENCE.finditer(markdown):
        info = m["info"].strip()
        if re.match(r"(py|python)\b", info) and ".no-run" not in info:
            blocks.append(textwrap.dedent(m["body"]))
    return blocks


PAGES = sorted(p for p in DOCS.rglob("*.md") if python_blocks(p.read_text()))


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_docs_python_blocks_run(page, tmp_path, monkeypatch):
    script = "\n".join(python_blocks(page.read_text()))
    if re.search(r"^\s*import torch|^\s*from torch", script, re.M):
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)  # whatever an example writes lands here
    exec(compile(script, str(page), "exec"), {"__name__": "__docs__"})


def test_every_fenced_python_block_is_found():
    """The runnable blocks are found in tabs too (a parser that missed them would pass)."""
    text = (DOCS / "getting-started.md").read_text()
    assert len(python_blocks(text)) >= 4
    assert "{.no-run}" in (DOCS / "concepts.md").read_text()


@functools.cache
def _site(tmp: str) -> Path:
    site = Path(tmp) / "site"
    run = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, f"mkdocs build --strict failed:\n{run.stderr[-4000:]}"
    return site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not HAS_MKDOCS:
        pytest.skip('mkdocs is not installed (pip install -e ".[docs]")')
    return _site(str(tmp_path_factory.mktemp("docs")))


ANCHOR = re.compile(r'\s(?:id|name)="([^"]+)"')
HREF = re.compile(r'\s(?:href|src)="([^"]+)"')


def _anchors(page: Path) -> set[str]:
    return set(ANCHOR.findall(page.read_text(errors="replace")))


def _public(module) -> list[tuple[str, object]]:
    """``module.__all__``, or the classes and functions defined in it without a ``_``."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            n
            for n, v in vars(module).items()
            if not n.startswith("_")
            and (inspect.isclass(v) or inspect.isfunction(v))
            and v.__module__ == module.__name__
        ]
    return [(n, getattr(module, n)) for n in names]


def test_site_builds_strict(site):
    assert (site / "index.html").exists()
    assert (site / "api" / "index.html").exists()


@pytest.mark.parametrize("module", [jaxrnn, jaxrnn.training, jaxrnn.linen, jaxrnn.nnx])
def test_api_reference_lists_every_public_name(site, module):
    anchors = set()
    for page in (site / "api").rglob("*.html"):
        anchors |= _anchors(page)
    missing = []
    for name, obj in _public(module):
        module_page = inspect.ismodule(obj)
        target = obj.__name__ if module_page else f"{obj.__module__}.{obj.__qualname__}"
        if target not in anchors:
            missing.append(f"{module.__name__}.{name} (looked for #{target})")
    assert not missing, f"no API reference entry for: {missing}"


def test_no_page_links_to_a_missing_page_or_anchor(site):
    pages = {p: None for p in site.rglob("*.html")}
    broken = []
    for page in pages:
        for href in HREF.findall(page.read_text(errors="replace")):
            url = urlsplit(href)
            if url.scheme or url.netloc or href.startswith(("mailto:", "data:", "javascript:")):
                continue
            if not url.path:
                target = page
            elif url.path.startswith("/"):  # 404.html links from the site root
                target = site / unquote(url.path).lstrip("/")
            else:
                target = (page.parent / unquote(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{page.relative_to(site)} -> {href}")
                continue
            if url.fragment and target.suffix == ".html":
                if pages.get(target) is None:
                    pages[target] = _anchors(target)
                if unquote(url.fragment) not in pages[target]:
                    broken.append(f"{page.relative_to(site)} -> {href} (no such anchor)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def _modules() -> list[str]:
    import pkgutil

    names = ["jaxrnn"]
    for info in pkgutil.walk_packages(jaxrnn.__path__, "jaxrnn."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    """Every ``>>>`` example in jaxrnn's docstrings runs and prints what it shows."""
    import doctest
    import importlib

    module = importlib.import_module(name)
    tests = doctest.DocTestFinder(exclude_empty=True).find(module, name)
    tests = [t for t in tests if t.examples]
    if not tests:
        pytest.skip("no docstring examples")
    if any("import torch" in ex.source for t in tests for ex in t.examples):
        pytest.importorskip("torch")
    monkeypatch.chdir(tmp_path)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    runner = doctest.DocTestRunner(optionflags=flags)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)


# Modules whose public functions all carry Args / Returns and a runnable example. The core
# modules join this list as the families/kernels rewrite gives them full docstrings.
FULLY_DOCUMENTED = [
    "jaxrnn.attention",
    "jaxrnn.sequences",
    "jaxrnn.interop",
    "jaxrnn.training.checkpoint",
    "jaxrnn.training.diagnostics",
    "jaxrnn.training.optim",
    "jaxrnn.training.parallel",
    "jaxrnn.training.tbptt",
]


@pytest.mark.parametrize("name", FULLY_DOCUMENTED)
def test_public_functions_have_args_returns_and_example(name):
    import importlib

    module = importlib.import_module(name)
    lacking = []
    for fname, fn in vars(module).items():
        if fname.startswith("_") or not inspect.isfunction(fn) or fn.__module__ != name:
            continue
        doc = inspect.getdoc(fn) or ""
        signature = inspect.signature(fn)
        needs = ["Examples:", ">>> "]
        if signature.parameters:
            needs.append("Args:")
        if signature.return_annotation not in (None, "None", inspect.Signature.empty):
            needs.append("Returns:")
        missing = [n.strip(": >") for n in needs if n not in doc]
        if missing:
            lacking.append(f"{fname}: no {', '.join(missing)}")
    assert not lacking, f"{name}: " + "; ".join(lacking)


# --- how the API reference renders -----------------------------------------------------------
# A docstring example that griffe does not parse as an ``Examples:`` section reaches Markdown
# as text, where ``>>>`` opens three nested quotes; a Sphinx role that no extension converted
# shows as ``:func:``. Both are visible only in the built HTML, so the test reads it.
CODE_SPANS = re.compile(r"<pre\b.*?</pre>|<code\b.*?</code>", re.S)
RAW_ROLE = re.compile(r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):")


def _api_pages(site: Path) -> list[Path]:
    return sorted((site / "api").rglob("*.html"))


def test_docstring_examples_render_as_code_and_roles_as_links(site):
    bad = []
    for page in _api_pages(site):
        prose = CODE_SPANS.sub("", page.read_text())
        name = page.relative_to(site).as_posix()
        if "&gt;&gt;&gt;" in prose or "<blockquote>" in prose:
            bad.append(f"{name}: a '>>>' example outside a code block")
        bad += [f"{name}: raw role {m}" for m in sorted(set(RAW_ROLE.findall(prose)))]
    assert not bad, "\n".join(bad)


def _section(html: str, path: str) -> str:
    """The HTML of the reference entry ``path`` (up to the next entry that is not its member)."""
    start = html.find(f'id="{path}"')
    if start < 0:
        return ""
    for m in re.finditer(r'<h\d id="(jaxrnn\.[\w.]+)"', html[start + 1 :]):
        if not m[1].startswith(path + "."):
            return html[start : start + 1 + m.start()]
    return html[start:]


FLAX_FIELDS = {"self", "parent", "name"}  # flax's own dataclass fields, not the layer's


@pytest.mark.parametrize("module", [jaxrnn, jaxrnn.linen, jaxrnn.nnx])
def test_reference_entries_show_their_parameters(site, module):
    """Every public callable's entry names each parameter; a function's has a parameter table."""
    html = {p: p.read_text() for p in _api_pages(site)}
    lacking = []
    for _, obj in _public(module):
        if inspect.ismodule(obj) or not callable(obj):
            continue
        path = f"{obj.__module__}.{obj.__qualname__}"
        section = next((s for s in (_section(h, path) for h in html.values()) if s), "")
        text = re.sub(r"<[^>]+>", "", section)
        # a class's own __init__: nnx's metaclass hides it behind (*args, **kwargs)
        signature = inspect.signature(obj.__init__ if inspect.isclass(obj) else obj)
        params = [p for p in signature.parameters if p not in FLAX_FIELDS]
        missing = [p for p in params if not re.search(rf"\b{p}\b", text)]
        if missing:
            lacking.append(f"{path}: {missing}")
        if inspect.isfunction(obj) and params and "Parameters:" not in text:
            lacking.append(f"{path}: no parameter table")
    assert not lacking, "entries without their parameters:\n" + "\n".join(lacking)


def test_layer_entries_show_how_they_are_called(site):
    html = (site / "api" / "jaxrnn.linen" / "index.html").read_text()
    html += (site / "api" / "jaxrnn.nnx" / "index.html").read_text()
    lacking = [
        f"{m.__name__}.{name}"
        for m in (jaxrnn.linen, jaxrnn.nnx)
        for name, obj in _public(m)
        if inspect.isclass(obj)
        and issubclass(obj, m.Recurrent)
        and f'id="{m.__name__}.{name}.__call__"' not in html
    ]
    assert not lacking, f"no __call__ entry for: {lacking}"
