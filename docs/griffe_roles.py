"""A griffe extension: Sphinx roles in docstrings become mkdocstrings cross-references.

jaxrnn's docstrings write ``:func:`stack``` and ``:mod:`jaxrnn.dropout``` (readable in
``help()``). Each role becomes a link ``[`stack`][jaxrnn.functional.stack]`` when its
target is a public object of the package (looked up as written, then relative to the
object, its parents and the package), and plain code otherwise.
"""

from __future__ import annotations

import re

import griffe

ROLE = re.compile(
    r":(?:py:)?(?:func|class|mod|meth|attr|data|obj|exc):`(~?)([\w.]+)(\(\))?`"
)


def _lookup(root: griffe.Module, path: str) -> str | None:
    """The canonical path of ``path`` inside ``root``'s package, if it is public."""
    parts = path.split(".")
    if parts[0] != root.name:
        return None
    obj = root
    for part in parts[1:]:
        if part.startswith("_") or part not in obj.members:
            return None
        obj = obj.members[part]
        if isinstance(obj, griffe.Alias):
            try:
                obj = obj.final_target
            except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                return None
    if any(p.startswith("_") for p in obj.path.split(".")):
        return None
    return obj.path


def _resolve(
    root: griffe.Module, obj: griffe.Object, target: str
) -> str | None:
    scopes = [obj.path]
    parent = obj.parent
    while parent is not None:
        scopes.append(parent.path)
        parent = parent.parent
    for candidate in [target, *(f"{s}.{target}" for s in scopes)]:
        found = _lookup(root, candidate)
        if found:
            return found
    return None


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        def visit(obj: griffe.Object) -> None:
            if obj.docstring is not None:
                obj.docstring.value = rewrite(pkg, obj, obj.docstring.value)
            for member in obj.members.values():
                if (
                    not isinstance(member, griffe.Alias)
                    and member.parent is obj
                ):
                    visit(member)

        visit(pkg)


def rewrite(root: griffe.Module, obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match) -> str:
        short, target, call = match.groups()
        label = (target.rpartition(".")[2] if short else target) + (call or "")
        path = _resolve(root, obj, target)
        return f"[`{label}`][{path}]" if path else f"`{label}`"

    return ROLE.sub(replace, text)
