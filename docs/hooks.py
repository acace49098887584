"""mkdocs hooks: the API reference is generated from the package, one page per module.

Every module under ``jaxrnn/`` (private ones, ``_name``, excepted) gets a page
``api/<module>.md`` holding ``::: <module>``, and the "API reference" section of the nav
lists them, so a new module appears without editing ``mkdocs.yml``. The overview page
``api/index.md`` lists every name of ``jaxrnn.__all__`` with a link to its entry. The
benchmark charts in ``benchmarks/results/`` are served from where ``benchmarks.run`` writes
them, so the site always shows the latest ones.
"""

from __future__ import annotations

import importlib
import inspect
import posixpath
import re
import sys
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "jaxrnn"
NAV_TITLE = "API reference"
# Reading order of the reference; modules not named here follow, alphabetically.
ORDER = [
    "jaxrnn.functional",
    "jaxrnn.linen",
    "jaxrnn.nnx",
    "jaxrnn.families",
    "jaxrnn.kernels",
    "jaxrnn.cells",
    "jaxrnn.scan",
    "jaxrnn.fused",
    "jaxrnn.params",
    "jaxrnn.interop",
    "jaxrnn.sequences",
    "jaxrnn.attention",
    "jaxrnn.dropout",
    "jaxrnn.training",
]


def modules() -> list[str]:
    """Public modules of the package, in reading order (the package itself excluded)."""
    found = []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1 and not any(p.startswith("_") for p in parts):
            found.append(".".join(parts))

    def rank(name: str) -> tuple[int, str]:
        hits = [
            i
            for i, m in enumerate(ORDER)
            if name == m or name.startswith(m + ".")
        ]
        return (hits[0] if hits else len(ORDER), name)

    return sorted(found, key=rank)


def is_package(module: str) -> bool:
    return (ROOT / Path(*module.split(".")) / "__init__.py").exists()


def page_path(module: str) -> str:
    """Where a module's page lives: ``api/<package>/index.md`` for a package."""
    return (
        f"api/{module}/index.md" if is_package(module) else f"api/{module}.md"
    )


def _link(from_page: str, module: str) -> str:
    """A relative Markdown link from ``from_page`` to ``module``'s page."""
    target = posixpath.relpath(page_path(module), posixpath.dirname(from_page))
    return f"[`{module}`]({target})"


def _nav(parent: str) -> list:
    """Nav entries of ``parent``'s submodules; a package is a section of its own."""
    entries: list = []
    for module in modules():
        if module.rpartition(".")[0] != parent:
            continue
        if is_package(module):
            entries.append({module: [page_path(module), *_nav(module)]})
        else:
            entries.append({module: page_path(module)})
    return entries


def on_config(config, **kwargs):
    for entry in config.nav:
        if isinstance(entry, dict) and NAV_TITLE in entry:
            entry[NAV_TITLE] = ["api/index.md", *_nav(PACKAGE)]
    return config


# Modules of layer classes: each named layer shows the call it inherits from ``Recurrent``.
INHERITED_CALL = {"jaxrnn.linen", "jaxrnn.nnx"}


def _page(module: str) -> str:
    if module in INHERITED_CALL:
        return (
            f"::: {module}\n    options:\n      inherited_members: [__call__]\n"
        )
    if not is_package(module):
        return f"::: {module}\n"
    here = page_path(module)
    subs = [m for m in modules() if m.rpartition(".")[0] == module]
    links = "".join(f"- {_link(here, m)}\n" for m in subs)
    # A package shows what it defines itself (a registry, a kernel type), not its re-exports.
    package = importlib.import_module(module)
    own = [
        name
        for name, obj in vars(package).items()
        if not name.startswith("_")
        and getattr(obj, "__module__", None) == module
    ]
    members = "[" + ", ".join(own) + "]" if own else "false"
    return f"::: {module}\n    options:\n      members: {members}\n\n{links}"


def _where(name: str, obj) -> str:
    """A Markdown link to the reference entry of ``jaxrnn.<name>``."""
    if inspect.ismodule(obj):
        return _link("api/index.md", obj.__name__)
    return f"[`{PACKAGE}.{name}`][{obj.__module__}.{obj.__qualname__}]"


# The overview's summaries are read from the live docstrings, past the griffe extension
# that turns Sphinx roles into links on the module pages; so they are converted here too.
ROLE = re.compile(
    r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):`(~?)([\w.]+)(\(\))?`"
)


def _target(path: str, scope: str) -> str | None:
    """The import path of ``path`` as written or inside ``scope``, if it exists."""
    for candidate in (path, f"{scope}.{path}"):
        module, _, attr = candidate.rpartition(".")
        for name, rest in ((candidate, ""), (module, attr)):
            try:
                obj = importlib.import_module(name)
            except (ImportError, ValueError):
                continue
            if not rest or hasattr(obj, rest):
                return candidate
    return None


def _roles(text: str, scope: str) -> str:
    def replace(match: re.Match) -> str:
        short, path, call = match.groups()
        label = (path.rpartition(".")[2] if short else path) + (call or "")
        target = _target(path, scope)
        return f"[`{label}`][{target}]" if target else f"`{label}`"

    return ROLE.sub(replace, text)


def _overview() -> str:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    package = importlib.import_module(PACKAGE)
    rows = []
    for name in package.__all__:
        obj = getattr(package, name)
        doc = (inspect.getdoc(obj) or "").strip().split("\n\n")[0]
        summary = _roles(
            " ".join(doc.split()), getattr(obj, "__module__", PACKAGE)
        )
        rows.append(
            f"| {_where(name, obj)} | {summary.replace('|', '&#124;')} |"
        )
    return (
        "# API reference\n\n"
        f"::: {PACKAGE}\n"
        "    options:\n"
        "      members: false\n"
        "      show_root_heading: false\n\n"
        "Generated from the docstrings, one page per module (in the "
        f"navigation). Everything `import {PACKAGE}` exports:\n\n"
        "| name | what it is |\n| --- | --- |\n" + "\n".join(rows) + "\n"
    )


def on_files(files, config, **kwargs):
    files.append(File.generated(config, "api/index.md", content=_overview()))
    for module in modules():
        files.append(
            File.generated(config, page_path(module), content=_page(module))
        )
    for chart in sorted((ROOT / "benchmarks" / "results").glob("*.png")):
        files.append(
            File(
                chart.relative_to(ROOT).as_posix(),
                src_dir=str(ROOT),
                dest_dir=config.site_dir,
                use_directory_urls=config.use_directory_urls,
            )
        )
    return files
