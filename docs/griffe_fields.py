"""A griffe extension: a ``flax.linen`` module's fields become its signature.

A linen module is a dataclass made by flax at class creation, so reading the source gives
griffe no ``__init__`` and the reference page would show ``LSTM()`` with no arguments. This
extension imports each class, reads its dataclass fields (inherited ones included, with the
defaults the subclass sets) and gives the class an ``__init__`` of those fields, which
``merge_init_into_class`` then shows as the constructor, each field with its type and
default. flax's own ``parent`` and ``name`` fields are left out.
"""

from __future__ import annotations

import dataclasses
import importlib

import griffe

FLAX_FIELDS = {"parent", "name"}


def _fields_init(cls: griffe.Class, runtime: type) -> griffe.Function:
    params = [
        griffe.Parameter(
            "self", kind=griffe.ParameterKind.positional_or_keyword
        )
    ]
    for field in dataclasses.fields(runtime):
        if field.name in FLAX_FIELDS or not field.init:
            continue
        member = cls.all_members.get(field.name)
        annotation = getattr(member, "annotation", None) or str(field.type)
        default = None
        if isinstance(field.default, type) and member is not None:
            # a dtype, as the source writes it (``jnp.float32``)
            default = member.value
        elif field.default is not dataclasses.MISSING:
            default = repr(field.default)
        elif field.default_factory is not dataclasses.MISSING:
            default = f"{field.default_factory.__name__}()"
        params.append(
            griffe.Parameter(
                field.name,
                annotation=annotation,
                kind=griffe.ParameterKind.positional_or_keyword,
                default=default,
            )
        )
    return griffe.Function(
        "__init__",
        parent=cls,
        parameters=griffe.Parameters(*params),
        returns="None",
    )


class LinenFields(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        import flax.linen as nn

        def visit(module: griffe.Module) -> None:
            runtime = importlib.import_module(module.path)
            for name, member in module.members.items():
                if isinstance(member, griffe.Alias):
                    continue
                if member.is_module:
                    visit(member)  # type: ignore[arg-type]
                    continue
                obj = getattr(runtime, name, None)
                if (
                    member.is_class
                    and isinstance(obj, type)
                    and issubclass(obj, nn.Module)
                    and "__init__" not in member.members
                ):
                    member.set_member("__init__", _fields_init(member, obj))  # type: ignore[arg-type]

        visit(pkg)
